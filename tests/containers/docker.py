"""The Docker CLI from tests: containers of our images on a private network, a published loopback port each."""
from __future__ import annotations

import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional

import httpx
import numpy as np
from PIL import Image

from tests.app.server import free_port
from tests.conftest import PHOTOS

NETWORK = "toonify-test"
HEALTHY_TIMEOUT_S = 240


def docker(*args: str, check: bool = True, timeout_s: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker"] + list(args), capture_output=True, text=True, timeout=timeout_s)
    if check and result.returncode != 0:
        raise AssertionError("docker %s failed: %s" % (" ".join(args), result.stderr.strip()))
    return result


def ensure_network() -> str:
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker("network", "create", NETWORK)
    return NETWORK


def unique(prefix: str) -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def keep_logs(container: str) -> None:
    """The container's output into $TOONIFY_CONTAINER_LOGS (set by scripts/test-containers.sh), if set."""
    folder = os.environ.get("TOONIFY_CONTAINER_LOGS")
    if folder:
        logs = docker("logs", "-t", container, check=False)
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / (container + ".log")).write_text(logs.stdout + logs.stderr)


def wait_healthy(container: str, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
    """Until Docker's own healthcheck (the image's HEALTHCHECK) reports healthy; the logs if it never does."""
    deadline = time.monotonic() + timeout_s
    state: Dict[str, object] = {}
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "-f", "{{json .State}}", container).stdout)
        health = state.get("Health") or {}
        if health.get("Status") == "healthy":
            return
        if not state.get("Running"):
            break
        time.sleep(1)
    logs = docker("logs", "--tail", "40", container, check=False)
    raise AssertionError("%s not healthy: %s\n%s%s" % (container, json.dumps(state)[-600:], logs.stdout, logs.stderr))


def wait_ready(url: str, until: Callable[[dict], bool] = lambda body: True,
               timeout_s: float = HEALTHY_TIMEOUT_S) -> dict:
    """Until /readyz answers 200 (models loaded, workers live) and ``until(body)`` holds. Docker's healthcheck
    is liveness (/healthz): it turns healthy before the models are loaded."""
    deadline = time.monotonic() + timeout_s
    answer = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/readyz", timeout=5)
            answer = response.text
            if response.status_code == 200 and until(response.json()):
                return response.json()
        except httpx.HTTPError as exc:
            answer = repr(exc)
        time.sleep(0.5)
    raise AssertionError("%s/readyz not ready in %ss: %s" % (url, timeout_s, answer[:500]))


class Service:
    """One container of an image, serving on a random loopback port, with its own /data volume."""

    def __init__(self, image: str, env: Optional[Dict[str, str]] = None) -> None:
        self.image, self.name, self.volume = image, unique("toonify-test"), unique("toonify-test-data")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env = dict({"TOONIFY_DEFAULT_STEPS": "20"}, **(env or {}))

    def start(self) -> "Service":
        env_args: List[str] = []
        for key, value in self.env.items():
            env_args += ["-e", "%s=%s" % (key, value)]
        # The image's HEALTHCHECK command, polled every 2 s instead of 30 s so the test does not wait.
        docker("run", "-d", "--name", self.name, "--network", ensure_network(),
               "-p", "127.0.0.1:%d:8000" % self.port, "-v", "%s:/data" % self.volume,
               "--health-interval", "2s", *env_args, self.image)
        self.wait()
        return self

    def wait(self) -> None:
        wait_healthy(self.name)
        wait_ready(self.url)

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return docker("exec", self.name, *command, check=False)

    def restart(self) -> None:
        docker("restart", self.name)
        self.wait()

    def remove(self) -> None:
        """Keep the container's log (for a failure after the fact), then remove it and its volume."""
        keep_logs(self.name)
        docker("rm", "-f", "-v", self.name, check=False)
        docker("volume", "rm", "-f", self.volume, check=False)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=180)


def photo(name: str) -> Dict[str, tuple]:
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


def png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text[:300]
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))

