"""tf1 and torch render the same pixels from the same inputs: the other engine runs in its own venv and
hands its output over through files."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.engines import backend
from stylegan2.layout import describe
from tests.conftest import REPO, STYLEGAN_FIXTURES

OTHER = {"tf1": "torch", "torch": "tf1"}


def test_engines_agree_through_files(tmp_path, engine):
    other_python = REPO / ".venv" / OTHER[engine] / "bin" / "python"
    if not other_python.exists():
        pytest.skip("the other engine's venv is not built")
    ws = np.random.RandomState(7).randn(3, 10, 512).astype(np.float32) * 0.8
    np.save(str(tmp_path / "w.npy"), ws)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    env.pop("TOONIFY_ENGINE", None)
    result = subprocess.run(
        [str(other_python), "-m", "stylegan2", "generate", "--pkl", str(STYLEGAN_FIXTURES / "tiny-toon.pkl"),
         "--w", str(tmp_path / "w.npy"), "--engine", OTHER[engine], "--out", str(tmp_path / "other")],
        cwd=str(REPO), env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    theirs = np.load(str(tmp_path / "other" / "images.npy"))
    spec = describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-toon.pkl"))
    ours = backend(engine).Generator(spec).synthesize(ws)
    assert np.abs(ours - theirs).max() <= 1e-4
