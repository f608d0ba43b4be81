"""Shared test fixtures: the repository's shared fixtures folder and the engine under test."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("TOONIFY_FIXTURES", REPO.parent / "shared" / "fixtures"))
STYLEGAN_FIXTURES = FIXTURES / "stylegan2"
PHOTOS = FIXTURES / "photos"


def _default_engine() -> str:
    return "tf1" if importlib.util.find_spec("tensorflow") is not None else "torch"


ENGINE = os.environ.get("TOONIFY_ENGINE") or _default_engine()


@pytest.fixture(scope="session")
def engine() -> str:
    """The engine this interpreter runs: tf1 under .venv/tf1, torch under .venv/torch."""
    return ENGINE


def run_cli(args: List[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m …`` in this interpreter, from the repo root, and capture its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m"] + args, cwd=str(REPO), env=env, capture_output=True,
                          text=True, **kwargs)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models dir written by make-tiny (the official file names, random small weights)."""
    from stylegan2.tiny import write_tiny_models

    out = tmp_path_factory.mktemp("tiny-models")
    write_tiny_models(out, seed=0)
    return out
