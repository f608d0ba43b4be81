"""make-tiny writes loadable official-format models; inspect reports their structure."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.cli import MAX_SEEDS, StepProgress, check_room
from stylegan2.layout import describe
from stylegan2.model_files import FFHQ_FILE, MARKER_FILE, PERCEPTUAL_FILE, TOON_FILE
from stylegan2.perceptual import describe_perceptual
from stylegan2.projection import StepInfo
from stylegan2.sampling import seed_count
from tests.conftest import REPO, STYLEGAN_FIXTURES, run_cli


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



# Runs `python -m stylegan2` in a fresh interpreter and prints its peak resident memory (KiB) last.
PEAK_RSS = ("import resource, sys; from stylegan2.cli import main; code = main(sys.argv[1:]); "
            "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def _generate(out, engine, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", PEAK_RSS, "generate", "--pkl", str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"),
               "--engine", engine, "--out", str(out)] + list(args)
    return subprocess.run(command, cwd=str(REPO), capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO)))


def test_generate_over_many_seeds_stays_in_bounded_memory(tmp_path, engine):
    """All at once, 500 tiny-model images took 0.5 GB (tf1) to 0.8 GB (torch) more than 16 did; batch by batch
    the run's peak does not grow with its length, and every image still lands in images.npy and a PNG."""
    peaks = {}
    for seeds in ("0-15", "0-499"):
        result = _generate(tmp_path / seeds, engine, "--seeds", seeds)
        assert result.returncode == 0, result.stderr
        count = seed_count(seeds)
        assert np.load(str(tmp_path / seeds / "images.npy"), mmap_mode="r").shape == (count, 3, 64, 64)
        assert len(list((tmp_path / seeds).glob("*.png"))) == count and not list((tmp_path / seeds).glob("*.partial"))
        peaks[seeds] = int(result.stdout.split()[-1]) / 1024
    assert peaks["0-499"] < peaks["0-15"] + 100, peaks  # MiB


def test_generate_in_batches_renders_what_one_batch_does(tmp_path, engine):
    for batch in ("3", "10"):
        result = _generate(tmp_path / batch, engine, "--seeds", "5-14", "--psi", "0.7", "--noise", "from-seed",
                           "--batch", batch)
        assert result.returncode == 0, result.stderr
    for name in ("images.npy", "ws.npy"):
        batched, whole = np.load(str(tmp_path / "3" / name)), np.load(str(tmp_path / "10" / name))
        assert batched.shape == whole.shape and np.abs(batched - whole).max() <= 1e-4  # as test_parity
    np.save(str(tmp_path / "w.npy"), np.load(str(tmp_path / "10" / "ws.npy"))[:, 0])
    result = _generate(tmp_path / "w", engine, "--w", str(tmp_path / "w.npy"), "--batch", "4")
    assert result.returncode == 0, result.stderr
    assert np.abs(np.load(str(tmp_path / "w" / "ws.npy")) - np.load(str(tmp_path / "10" / "ws.npy"))).max() <= 1e-6


def test_generate_refuses_absurd_seed_ranges_at_once(tmp_path):
    result = run_cli(["stylegan2", "generate", "--pkl", str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"),
                      "--seeds", "0-99999999999", "--out", str(tmp_path)], timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is 100000000000 seeds; at most %d per run: split it into several runs" % MAX_SEEDS in result.stderr


def test_generate_refuses_a_run_the_disk_cannot_hold(tmp_path):
    spec = describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"))
    check_room(tmp_path, 10, spec)
    per_image = 5 * 3 * 64 * 64 + 10 * 512 * 4
    too_many = shutil.disk_usage(str(tmp_path)).free // per_image + 1000
    with pytest.raises(ValueError, match=r"%d images at 64x64 need about .* GB in .*; .* GB are free" % too_many):
        check_room(tmp_path, too_many, spec)
