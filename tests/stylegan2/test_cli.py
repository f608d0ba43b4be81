"""make-tiny writes loadable official-format models; inspect reports their structure."""
from __future__ import annotations

import io
import json
import sys

import pytest

from stylegan2 import pickles
from stylegan2.cli import StepProgress
from stylegan2.layout import describe
from stylegan2.model_files import FFHQ_FILE, MARKER_FILE, PERCEPTUAL_FILE, TOON_FILE
from stylegan2.perceptual import describe_perceptual
from stylegan2.projection import StepInfo
from tests.conftest import STYLEGAN_FIXTURES, run_cli


def test_make_tiny_writes_official_names_and_marker(tmp_path):
    result = run_cli(["stylegan2", "make-tiny", "--out", str(tmp_path), "--seed", "3"])
    assert result.returncode == 0, result.stderr
    for name in (FFHQ_FILE, TOON_FILE, PERCEPTUAL_FILE):
        assert (tmp_path / name).stat().st_size > 0
    assert "TEST models" in (tmp_path / MARKER_FILE).read_text()
    ffhq = describe(pickles.load_generator(tmp_path / FFHQ_FILE))
    toon = describe(pickles.load_generator(tmp_path / TOON_FILE))
    assert ffhq.resolution == toon.resolution == 64
    # Toonify's blend: high-res layers come from the FFHQ model, low-res from the cartoon one.
    assert (toon.synthesis_vars["64x64/Conv1/weight"] == ffhq.synthesis_vars["64x64/Conv1/weight"]).all()
    assert not (toon.synthesis_vars["8x8/Conv1/weight"] == ffhq.synthesis_vars["8x8/Conv1/weight"]).all()
    assert len(describe_perceptual(pickles.load(tmp_path / PERCEPTUAL_FILE)).linear) == 5


def test_inspect_json_reports_generator_shape():
    result = run_cli(["stylegan2", "inspect", "--pkl", str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"), "--json"])
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["generator"]["resolution"] == 64 and info["generator"]["num_ws"] == 10
    gs = info["networks"][2]
    assert gs["role"] == "Gs" and gs["components"][0]["variables"]["4x4/Const/const"] == [1, 64, 4, 4]


def test_inspect_text_and_errors(tmp_path):
    result = run_cli(["stylegan2", "inspect", "--pkl", str(STYLEGAN_FIXTURES / "tiny-toon.pkl")])
    assert result.returncode == 0 and "resolution 64, num_ws 10" in result.stdout
    page = tmp_path / "page.pkl"
    page.write_text("<html>quota exceeded</html>")
    bad = run_cli(["stylegan2", "inspect", "--pkl", str(page)])
    assert bad.returncode == 2 and "HTML page" in bad.stderr and "Traceback" not in bad.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, shown", [(_Terminal, True), (io.StringIO, False)])
def test_progress_shows_step_losses_and_eta_on_a_terminal_only(monkeypatch, stream, shown):
    captured = stream()
    monkeypatch.setattr(sys, "stderr", captured)
    progress = StepProgress("photo.jpg")
    for step in range(1, 6):
        progress(StepInfo(step, 5, [0.5 / step, 0.25 / step]))
    text = captured.getvalue()
    assert ("5/5" in text and "loss 0.1000, 0.0500" in text and "<00:00" in text) == shown
    assert text == "" or shown
