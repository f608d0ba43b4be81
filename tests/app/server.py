"""A real uvicorn server on a loopback port, as a subprocess (so tests can SIGKILL and restart it)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import httpx

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def end_process(process: Optional[subprocess.Popen], graceful: bool = True, timeout_s: float = 20) -> None:
    """SIGTERM (then SIGKILL after ``timeout_s``), or SIGKILL at once; nothing if it already ended."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Server:
    def __init__(self, engine: str, models: Path, data: Path, cache: Path, **settings: object) -> None:
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ, TOONIFY_ENGINE=engine, TOONIFY_MODELS_DIR=str(models),
                        TOONIFY_DATA_DIR=str(data), TOONIFY_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="2",
                        PYTHONPATH=str(REPO), TOONIFY_DEFAULT_STEPS="20")
        self.env.update({"TOONIFY_" + k.upper(): str(v) for k, v in settings.items()})
        self.log = data.parent / ("server-%d.log" % self.port)
        self.process: Optional[subprocess.Popen] = None
        self.entry = "app"  # the module run with ``serve`` (tests.app.counted_server counts the store's reads)

    def spawn(self) -> "Server":
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.entry, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=str(REPO), env=self.env, stdout=open(str(self.log), "ab"), stderr=subprocess.STDOUT)
        return self

    def wait_until(self, path: str = "/readyz", timeout_s: float = 120) -> "Server":
        """Until ``path`` answers 200 (readiness by default)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited: %s" % self.log.read_text()[-2000:])
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("%s not 200 after %ss: %s" % (path, timeout_s, self.log.read_text()[-2000:]))

    def start(self, timeout_s: float = 120) -> "Server":
        return self.spawn().wait_until("/readyz", timeout_s)

    def kill(self) -> None:
        end_process(self.process, graceful=False)

    def stop(self) -> None:
        end_process(self.process)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)


def wait_for(client: httpx.Client, job_id: str, statuses=("succeeded", "failed", "cancelled"),
             timeout_s: float = 120, until: Optional[Callable[[Dict], bool]] = None) -> Dict:
    """Poll the job until its status is one of ``statuses`` (or ``until(job)`` holds, when given)."""
    done = until or (lambda job: job["status"] in statuses)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get("/jobs/%s" % job_id).json()
        if done(job):
            return job
        time.sleep(0.02)
    raise AssertionError("job %s did not get there in %ss: %s" % (job_id, timeout_s, job))
