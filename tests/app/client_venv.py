"""A fresh venv with the client installed by pip from a copy of clients/python, offline: pip may use only what
the venv can import, and the venv sees only httpx and its dependencies (plus setuptools to build the client),
linked from the running interpreter's environment. So the install proves the package needs nothing else (no
TensorFlow, PyTorch, dlib), and no network is touched (--no-index)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List

from packaging.requirements import Requirement

from tests.conftest import REPO

try:
    from importlib import metadata
except ImportError:  # Python 3.7 (the tf1 stack): the backport pytest itself depends on
    import importlib_metadata as metadata  # type: ignore[no-redef]

CLIENT = REPO / "clients" / "python"
BUILD_TOOLS = ("setuptools", "wheel")  # wheel: only where setuptools predates its own bdist_wheel (Python 3.7)


def closure(names: Iterable[str]) -> Dict[str, "metadata.Distribution"]:
    """The installed distributions ``names`` need, by name (absent ones are skipped: wheel on Python 3.11)."""
    found: Dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def link_distributions(dists: Iterable["metadata.Distribution"], folder: Path) -> None:
    """Symlink each distribution's top-level files (its modules and its .dist-info) into ``folder``."""
    folder.mkdir(parents=True)
    for dist in dists:
        for top in {path.parts[0] for path in dist.files or [] if path.parts[0] not in ("..", "__pycache__")}:
            target = Path(str(dist.locate_file(top)))
            if target.exists() and not (folder / top).exists():
                (folder / top).symlink_to(target)


def site_packages(venv: Path) -> Path:
    version = "python%d.%d" % sys.version_info[:2]
    return venv / "lib" / version / "site-packages"


def client_venv(root: Path) -> Path:
    """``root``/venv with the client pip-installed; returns its bin folder (``toonify`` is there)."""
    venv, source = root / "venv", root / "toonify-client"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    link_distributions(closure(("httpx",) + BUILD_TOOLS).values(), root / "deps")
    (site_packages(venv) / "deps.pth").write_text(str(root / "deps") + "\n")
    shutil.copytree(str(CLIENT), str(source))  # pip builds in the source folder: keep the checkout clean
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                          "--no-index", "--no-build-isolation", "--disable-pip-version-check", str(source)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv / "bin"


def clean_env(extra: Dict[str, str]) -> Dict[str, str]:
    """A child's environment without this checkout on its path: the client must stand on its own."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(extra)
    return env


def run(args: List[str], env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=clean_env(env), cwd=str(cwd), capture_output=True, text=True, timeout=600)


