"""`make serve` as a newcomer runs it: no Python 3.7 on the machine, no real weights, then ``./preload.sh``, then
`make serve` again. It runs in a copy of the Makefile and scripts beside the repository's code, with a venv
that borrows the torch venv's packages, so the repository's own models/, data/ and .venv are never touched."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator

import httpx
import pytest

from stylegan2.model_files import MARKER_FILE
from tests.app.server import free_port
from tests.conftest import ENGINE, REPO
from tests.test_packaging import NAMES, ModelHost

TORCH_VENV = REPO / ".venv" / "torch"
START_TIMEOUT_S = 240  # venv check, make-tiny and loading the models on a busy 2-core machine

pytestmark = pytest.mark.skipif(ENGINE != "torch", reason="serve.sh runs the torch venv here; once is enough")


@pytest.fixture()
def checkout(tmp_path) -> Path:
    """The Makefile, scripts and preload.sh copied; code and requirements linked; .venv/torch a venv whose
    interpreter is the one the shared torch venv was built with and whose packages are that venv's."""
    root = tmp_path / "toonify"
    shutil.copytree(str(REPO / "scripts"), str(root / "scripts"))
    for name in ("Makefile", "preload.sh"):
        shutil.copy(str(REPO / name), str(root / name))
    for name in ("app", "stylegan2", "requirements"):
        (root / name).symlink_to(REPO / name)
    venv = root / ".venv" / "torch"
    (venv / "bin").mkdir(parents=True)
    for name in ("pyvenv.cfg", ".requirements.sha256"):
        shutil.copy(str(TORCH_VENV / name), str(venv / name))
    (venv / "lib").symlink_to(TORCH_VENV / "lib")
    (venv / "bin" / "python").symlink_to(os.path.realpath(str(TORCH_VENV / "bin" / "python")))
    return root


def serve_env(root: Path, **settings: str) -> Dict[str, str]:
    """No TOONIFY_* of the test run; no Python 3.7 where serve.sh would look; pip offline (a venv that would
    have to be built fails at once instead of downloading)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOONIFY_")}
    env.update(TOONIFY_PY37=str(root / "no-python3.7"), PIP_NO_INDEX="1", PYTHONDONTWRITEBYTECODE="1",
               TOONIFY_PY311=os.path.realpath(str(TORCH_VENV / "bin" / "python")))
    env.update(settings)
    return env


class MakeServe:
    """`make serve` in its own process group, its output in a file."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = root.parent / ("make-serve-%d.log" % self.port)
        self.process = subprocess.Popen(["make", "-s", "serve"], cwd=str(root), start_new_session=True,
                                        env=serve_env(root, TOONIFY_PORT=str(self.port)),
                                        stdout=open(str(self.log), "wb"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> dict:
        """/healthz, then /readyz 200 (models loaded); the readiness body."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "make serve exited:\n" + self.output()[-3000:]
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    ready = httpx.get(self.url + "/readyz", timeout=5)
                    if ready.status_code == 200:
                        return ready.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError("make serve not ready in %d s:\n%s" % (START_TIMEOUT_S, self.output()[-3000:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture()
def mirror(tiny_models) -> Iterator[ModelHost]:
    """A loopback host serving model files that pass preload's format checks (relaxed to 64² test models)."""
    server = ModelHost({name: (tiny_models / name).read_bytes() for name in NAMES.values()})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def served(root: Path) -> dict:
    server = MakeServe(root)
    try:
        ready = server.ready()
    finally:
        server.stop()
    ready["output"] = server.output()
    return ready


def test_without_python37_make_serve_runs_torch_on_tiny_models_then_the_real_ones_after_preload(checkout, mirror):
    first = served(checkout)
    assert "no Python 3.7 at %s" % (checkout / "no-python3.7") in first["output"], first["output"]
    assert "serving with the torch engine on Python 3." in first["output"]
    assert "reusing .venv/torch" in first["output"]
    assert first["engine"] == "torch" and "tiny" in first["warning"]
    assert "serving tiny TEST models from .cache/tiny-models" in first["output"]
    assert not list(checkout.glob("models/*.pkl"))  # nothing where the real weights go
    assert (checkout / ".cache" / "tiny-models" / MARKER_FILE).exists()

    preload = subprocess.run(["./preload.sh"], cwd=str(checkout), capture_output=True, text=True, timeout=300,
                             env=serve_env(checkout, TOONIFY_MODEL_MIRROR=mirror.base + "/good",
                                           TOONIFY_EXPECT_RESOLUTION="64", TOONIFY_MIN_MODEL_BYTES="10000"))
    assert preload.returncode == 0, preload.stdout + preload.stderr
    for name, data in mirror.files.items():
        assert (checkout / "models" / name).read_bytes() == data

    second = served(checkout)
    assert second["engine"] == "torch" and "warning" not in second, second
    assert "tiny" not in second["output"].lower(), second["output"]


def failed_make_serve(root: Path, **settings: str) -> str:
    result = subprocess.run(["make", "-s", "serve"], cwd=str(root), env=serve_env(root, **settings),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Error 127" not in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stderr


def test_with_no_usable_python_make_serve_says_what_to_install(checkout):
    message = failed_make_serve(checkout, TOONIFY_PY311=str(checkout / "no-python3.11"))
    assert "error: no Python to serve with" in message
    assert "pyenv install 3.7.16" in message and "TOONIFY_PY37" in message and "TOONIFY_PY311" in message


def test_asking_for_tf1_without_python37_says_how_to_get_it(checkout):
    message = failed_make_serve(checkout, TOONIFY_ENGINE="tf1")
    assert "error: .venv/tf1 needs a Python interpreter" in message and "pyenv install 3.7.16" in message
    assert not (checkout / ".venv" / "tf1").exists()
