"""Every wheel each image installs exists for its base's Python and glibc (asked of PyPI, nothing installed).

The stand-in bases here are Debian bookworm (glibc 2.36), so a build here cannot show that a wheel needing a
newer glibc than the real base's would fail there. So: resolve the image's requirements with the image's
Python (the project venv of that version), then ask PyPI for a wheel of every resolved version under the
real base's platform tags alone."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import REPO

# python:3.7-slim-bullseye: Debian 11, glibc 2.31; python:3.11-slim-bookworm: Debian 12, glibc 2.36.
BASES = {"tf1": ("37", "cp37m", 31), "torch": ("311", "cp311", 36)}
# Published only as source archives, of pure Python or data (nothing compiled): they install on any glibc.
SOURCE_ONLY = {"face-recognition-models", "gast"}


def pypi_only() -> Dict[str, str]:
    """What the real bases see: PyPI alone, not this machine's pip configuration (its local wheels, a CPU
    torch among them, and local indexes); only its CA bundle, which the proxy to PyPI needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    cert = subprocess.run(["pip", "config", "get", "global.cert"], capture_output=True, text=True).stdout.strip()
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_CERT=os.environ.get("PIP_CERT", cert))
    return {k: v for k, v in env.items() if v}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def manylinux_tags(glibc_minor: int) -> List[str]:
    """pip takes --platform literally, so every tag a glibc 2.<minor> system accepts is listed."""
    tags = ["manylinux_2_%d_x86_64" % minor for minor in range(glibc_minor, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def requirements(path: Path) -> List[str]:
    lines: List[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            lines += requirements((path.parent / line[3:].strip()).resolve())
        elif line:
            lines.append(line)
    return lines


def pip_dry_run(python: Path, tmp_path: Path, reqs: List[str], *options: str) -> Dict[str, str]:
    """Resolve without installing; {name: version} of everything pip would install."""
    (tmp_path / "req.txt").write_text("\n".join(reqs) + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--no-cache-dir",
         "--report", str(report), *options, "-r", str(tmp_path / "req.txt")],
        capture_output=True, text=True, timeout=900, env=pypi_only())
    assert result.returncode == 0, result.stderr[-3000:]
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


@pytest.mark.parametrize("engine", sorted(BASES))
def test_every_wheel_has_a_build_for_the_base(engine, tmp_path):
    python_version, abi, glibc_minor = BASES[engine]
    wanted = [req for req in requirements(REPO / "docker" / engine / "requirements.txt")
              if canonical(req.split("==")[0]) not in SOURCE_ONLY]
    resolved = pip_dry_run(REPO / ".venv" / engine / "bin" / "python", tmp_path, wanted)
    assert "tensorflow-gpu" in resolved if engine == "tf1" else resolved["torch"] == "2.13.0"
    compiled = ["%s==%s" % item for item in sorted(resolved.items()) if item[0] not in SOURCE_ONLY]
    platforms = [arg for tag in manylinux_tags(glibc_minor) for arg in ("--platform", tag)]
    found = pip_dry_run(REPO / ".venv" / "torch" / "bin" / "python", tmp_path, compiled,
                        "--no-deps", "--ignore-requires-python", "--only-binary=:all:", "--python-version",
                        python_version, "--implementation", "cp", "--abi", abi, *platforms,
                        "--target", str(tmp_path / "target"))
    assert found == {name: version for name, version in resolved.items() if name not in SOURCE_ONLY}
