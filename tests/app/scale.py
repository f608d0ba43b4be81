"""Real processes for the scaled-out service: Debian's redis-server (append-only file on) on a loopback port,
and ``python -m app worker`` processes, each its own subprocess so tests can SIGKILL them."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import redis

from tests.app.server import Server, end_process, free_port
from tests.conftest import REPO


class RedisServer:
    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run the README's test command (make test), "
                               "which installs Debian's redis-server")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.process: Optional[subprocess.Popen] = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> "RedisServer":
        """Persistence by the append-only file alone (no RDB snapshots), fsync'd every second."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"],
            stdout=open(str(self.folder / "redis.log"), "ab"), stderr=subprocess.STDOUT)
        client = self.client()
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    log = (self.folder / "redis.log").read_text()
                    raise RuntimeError("redis-server did not start: %s" % log) from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def kill(self) -> None:
        end_process(self.process, graceful=False)

    def stop(self) -> None:
        end_process(self.process)


class Workers:
    """``python -m app worker`` processes by name, sharing one environment (the API's)."""

    def __init__(self, env: Dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: Dict[str, subprocess.Popen] = {}

    def start(self, *names: str, options: Sequence[str] = ()) -> None:
        for name in names:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "app", "worker", "--name", name] + list(options), cwd=str(REPO), env=self.env,
                stdout=open(str(self.logs / ("worker-%s.log" % name)), "ab"), stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        end_process(self.processes[name], graceful=False)

    def stop_all(self) -> None:
        for process in self.processes.values():
            end_process(process)

    def log(self, name: str) -> str:
        return (self.logs / ("worker-%s.log" % name)).read_text()


def live_worker_names(readyz: Dict) -> List[str]:
    return [worker["name"] for worker in readyz.get("workers", [])]


def metric_values(text: str, name: str) -> Dict[str, float]:
    """Prometheus text → {label set: value} for one metric family."""
    values = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name):].rsplit(" ", 1)
            values[labels] = float(value)
    return values


TTL_S = 4  # a dead worker is noticed, and its job delivered again, within a few seconds


class Cluster:
    def __init__(self, engine: str, tiny_models: Path, folder: Path, cache: Path, **settings: object) -> None:
        self.redis = RedisServer(folder / "redis").start()
        api_models = folder / "api-models"  # empty: the API in this mode loads no models
        api_models.mkdir()
        self.api = Server(engine, api_models, folder / "data", cache, queue="redis", redis_url=self.redis.url,
                          worker_ttl_s=TTL_S, **settings).spawn().wait_until("/healthz")
        self.workers = Workers(dict(self.api.env, TOONIFY_MODELS_DIR=str(tiny_models)), folder)

    def wait_for_workers(self, client, names: List[str], timeout_s: float = 180) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = client.get("/readyz")
            if ready.status_code == 200 and sorted(live_worker_names(ready.json())) == sorted(names):
                return ready.json()
            time.sleep(0.2)
        raise AssertionError("workers %s not live: %s\n%s" % (names, ready.json(), self.logs()))

    def logs(self) -> str:
        return "\n".join("--- %s\n%s" % (name, self.workers.log(name)[-3000:]) for name in self.workers.processes)

    def close(self) -> None:
        self.workers.stop_all()
        self.api.stop()
        self.redis.stop()
