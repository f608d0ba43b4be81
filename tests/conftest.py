"""Test fixtures for every test: the data in tests/fixtures/ and the engine under test."""
from __future__ import annotations

import hashlib
import importlib.util
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
PHOTOS = FIXTURES / "photos"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unpack_stylegan_fixtures(packed: Path) -> Path:
    """The genuine pickles are kept xz-compressed (tests/fixtures/README.md); unpack them once per machine,
    into a folder named by their digests, check each against the original's SHA-256, and copy the rest."""
    sums = (packed / "SHA256SUMS").read_text()
    folder = Path(tempfile.gettempdir()) / ("toonify-test-fixtures-" + _sha256(sums.encode())[:16])
    if folder.is_dir():
        return folder
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=str(folder.parent)))
    shutil.copytree(str(packed / "reference"), str(staging / "reference"))
    for line in sums.splitlines():
        digest, name = line.split()
        data = lzma.decompress((packed / (name + ".xz")).read_bytes())
        if _sha256(data) != digest:
            raise RuntimeError("%s.xz does not unpack to the original %s (SHA256SUMS)" % (name, name))
        (staging / name).write_bytes(data)
    try:
        staging.rename(folder)
    except OSError:  # another session unpacked the same files first
        shutil.rmtree(str(staging))
    return folder


STYLEGAN_FIXTURES = unpack_stylegan_fixtures(FIXTURES / "stylegan2")


def _default_engine() -> str:
    return "tf1" if importlib.util.find_spec("tensorflow") is not None else "torch"


ENGINE = os.environ.get("TOONIFY_ENGINE") or _default_engine()


@pytest.fixture(scope="session")
def engine() -> str:
    """The engine this interpreter runs: tf1 under .venv/tf1, torch under .venv/torch."""
    return ENGINE


def run_cli(args: List[str], env_extra: Optional[Dict[str, str]] = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m …`` in this interpreter, from the repo root, and capture its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m"] + args, cwd=str(REPO), env=env, capture_output=True,
                          text=True, **kwargs)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models dir written by make-tiny (the official file names, random small weights)."""
    from stylegan2.tiny import write_tiny_models

    out = tmp_path_factory.mktemp("tiny-models")
    write_tiny_models(out, seed=0)
    return out
