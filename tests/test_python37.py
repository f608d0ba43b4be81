"""All of app/ and stylegan2/ must run on Python 3.7 (the tf1 image)."""
from __future__ import annotations

import importlib
import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

PY37 = Path(subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() or "/root/.pyenv")
PY37 = PY37 / "versions" / "3.7.16" / "bin" / "python3.7"
PACKAGES = ("app", "stylegan2")


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_sources_parse_as_python37():
    if not PY37.exists():
        pytest.skip("no Python 3.7 interpreter on this machine")
    files = [str(path) for _, path in _modules()]
    code = "import ast,sys\nfor f in sys.argv[1:]: ast.parse(open(f,'rb').read(), f)"
    result = subprocess.run([str(PY37), "-c", code] + files, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_module_imports(engine):
    """Under .venv/tf1 this is Python 3.7: every module that does not need the other framework imports."""
    skip = "stylegan2.torch" if engine == "tf1" else "stylegan2.tf"
    for name, _ in _modules():
        if name.startswith(skip) or name.endswith("__main__"):
            continue
        importlib.import_module(name)
