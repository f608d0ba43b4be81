"""blend_models.py reproduced exactly; weight interpolation has exact endpoints."""
from __future__ import annotations

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.blending import blend_weight, interpolate_variables
from tests.conftest import REPO, STYLEGAN_FIXTURES, run_cli
from tests.stylegan2.test_pickles import _walk_equal


def test_blend_cli_reproduces_original_blend(tmp_path):
    out = tmp_path / "toon.pkl"
    result = run_cli(["stylegan2", "blend", "--low", str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"),
                      "--high", str(STYLEGAN_FIXTURES / "tiny-other.pkl"), "--resolution", "16", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    ours, theirs = pickles.load(out), pickles.load(STYLEGAN_FIXTURES / "tiny-toon.pkl")
    for a, b in zip(ours, theirs):
        _walk_equal(a, b)


def test_hard_switch_and_soft_width():
    assert [blend_weight(p, 8, None) for p in (8, 9, 10, 17)] == [0.0, 0.0, 1.0, 1.0]
    assert blend_weight(8, 8, 1.0) == pytest.approx(0.5)
    assert 0.5 < blend_weight(10, 8, 2.0) < 1.0


def test_soft_blend_mixes_values(tmp_path):
    out = tmp_path / "soft.pkl"
    result = run_cli(["stylegan2", "blend", "--low", str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"),
                      "--high", str(STYLEGAN_FIXTURES / "tiny-other.pkl"), "--resolution", "16", "--width", "1",
                      "--out", str(out)])
    assert result.returncode == 0, result.stderr
    low = pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl").component("synthesis").variables
    high = pickles.load_generator(STYLEGAN_FIXTURES / "tiny-other.pkl").component("synthesis").variables
    mixed = pickles.load_generator(out).component("synthesis").variables
    name = "16x16/Conv0_up/weight"  # position 4 = mid: y = 0.5
    np.testing.assert_allclose(mixed[name], 0.5 * (low[name] + high[name]), atol=1e-6)
    np.testing.assert_array_equal(mixed["4x4/Conv/weight"], low["4x4/Conv/weight"])  # never listed
    np.testing.assert_array_equal(mixed["noise3"], low["noise3"])


def test_interpolation_endpoints_are_exact():
    a = pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl").component("synthesis").variables
    b = pickles.load_generator(STYLEGAN_FIXTURES / "tiny-toon.pkl").component("synthesis").variables
    for name, value in interpolate_variables(a, b, 1.0).items():
        np.testing.assert_array_equal(value, b[name])
    for name, value in interpolate_variables(a, b, 0.0).items():
        np.testing.assert_array_equal(value, a[name])
    half = interpolate_variables(a, b, 0.5)
    np.testing.assert_allclose(half["64x64/ToRGB/weight"], (a["64x64/ToRGB/weight"] + b["64x64/ToRGB/weight"]) / 2,
                               atol=1e-6)
    with pytest.raises(ValueError):
        interpolate_variables(a, b, 1.5)


def test_help_and_readme_say_what_blend_does(tmp_path):
    """Layers up to --resolution from --low, above it from --high; Toonify's model is cartoon low, FFHQ high."""
    out = tmp_path / "blend.pkl"
    low_pkl, high_pkl = STYLEGAN_FIXTURES / "tiny-ffhq.pkl", STYLEGAN_FIXTURES / "tiny-other.pkl"
    assert run_cli(["stylegan2", "blend", "--low", str(low_pkl), "--high", str(high_pkl), "--resolution", "16",
                    "--out", str(out)]).returncode == 0
    low, high, blended = (pickles.load_generator(p).component("synthesis").variables for p in (low_pkl, high_pkl, out))
    for name in ("16x16/Conv0_up/weight", "16x16/Conv1/weight"):
        np.testing.assert_array_equal(blended[name], low[name])
    for name in ("32x32/Conv0_up/weight", "64x64/ToRGB/weight"):
        np.testing.assert_array_equal(blended[name], high[name])
    shown = " ".join(run_cli(["stylegan2", "blend", "--help"]).stdout.split())
    assert "last resolution taken from --low; the layers above it come from --high" in shown
    assert "blend --low cartoon.pkl --high ffhq.pkl" in shown
    assert "blend --low cartoon.pkl --high ffhq.pkl" in (REPO / "README.md").read_text()
