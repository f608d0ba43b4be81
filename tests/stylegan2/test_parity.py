"""Our engine renders the original implementation's pixels (fixtures made by NVlabs TF StyleGAN2)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylegan2 import pickles
from stylegan2.layout import describe
from stylegan2.sampling import to_uint8
from tests.conftest import STYLEGAN_FIXTURES, run_cli

FLOAT_TOL = 1e-4
WS_TOL = 1e-5
REFERENCE = STYLEGAN_FIXTURES / "reference"


def _assert_uint8_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() <= 0.001


@pytest.mark.parametrize(
    "reference, seeds, extra",
    [
        ("ffhq-seeds-psi0.7.npz", "0-7", ["--psi", "0.7"]),
        ("ffhq-seeds-noise-from-seed-psi0.5.npz", "0-3", ["--psi", "0.5", "--noise", "from-seed"]),
    ],
)
def test_generate_cli_matches_original(tmp_path, engine, reference, seeds, extra):
    ref = np.load(str(REFERENCE / reference))
    result = run_cli(["stylegan2", "generate", "--pkl", str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"), "--seeds", seeds,
                      "--engine", engine, "--out", str(tmp_path)] + extra)
    assert result.returncode == 0, result.stderr
    images, ws = np.load(str(tmp_path / "images.npy")), np.load(str(tmp_path / "ws.npy"))
    assert images.dtype == np.float32 and images.shape == ref["images"].shape
    assert np.abs(ws - ref["ws"]).max() <= WS_TOL
    assert np.abs(images - ref["images"]).max() <= FLOAT_TOL
    pngs = np.stack([np.array(Image.open(str(tmp_path / ("%04d.png" % i)))) for i in range(len(images))])
    _assert_uint8_close(pngs, ref["images_uint8"])


@pytest.mark.parametrize("model, reference", [("tiny-ffhq.pkl", "ffhq-synthesis.npz"),
                                              ("tiny-toon.pkl", "toon-synthesis.npz")])
def test_wplus_synthesis_matches_original(engine, model, reference):
    from stylegan2.engines import backend

    ref = np.load(str(REFERENCE / reference))
    spec = describe(pickles.load_generator(STYLEGAN_FIXTURES / model))
    generator = backend(engine).Generator(spec)
    images = generator.synthesize(ref["ws"])
    assert np.abs(images - ref["images"]).max() <= FLOAT_TOL
    _assert_uint8_close(to_uint8(images), ref["images_uint8"])


def test_swapping_synthesis_weights_renders_the_other_model(engine):
    """load_synthesis (used for blends and toon strength) gives the same pixels as loading that model."""
    from stylegan2.engines import backend

    ref = np.load(str(REFERENCE / "toon-synthesis.npz"))
    ffhq = describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"))
    toon = describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-toon.pkl"))
    generator = backend(engine).Generator(ffhq)
    generator.load_synthesis(toon.synthesis_vars)
    assert np.abs(generator.synthesize(ref["ws"]) - ref["images"]).max() <= FLOAT_TOL


def test_mapping_matches_original(engine):
    from stylegan2.engines import backend

    ref = np.load(str(REFERENCE / "ffhq-seeds-psi0.7.npz"))
    spec = describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"))
    w = backend(engine).Generator(spec).map(ref["z"])
    assert np.abs(w - ref["w_mapped"][:, 0]).max() <= WS_TOL
