"""How long the Redis-mode API takes to answer while its redis-server is frozen (SIGSTOP: connections are
accepted by the kernel, never answered) and after it was killed (connections refused), per kind of request.

    python -m bench.frozen_redis [--engine torch]
"""
from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import httpx

from bench.common import report
from tests.app.scale import Cluster
from tests.conftest import PHOTOS

PHOTO = (PHOTOS / "astronaut.png").read_bytes()


def requests(client: httpx.Client) -> Dict[str, Callable[[], httpx.Response]]:
    return {"GET /jobs/{id}": lambda: client.get("/jobs/nosuchjob"),
            "POST /toonify": lambda: client.post("/toonify?async=1", files={"image": ("a.png", PHOTO, "image/png")}),
            "GET /readyz": lambda: client.get("/readyz")}


def timed_rows(client: httpx.Client, redis: str) -> List[Dict[str, object]]:
    rows: List[Dict[str, object]] = []
    for name, call in requests(client).items():
        started = time.perf_counter()
        status = call().status_code
        rows.append({"redis": redis, "request": name, "status": status, "seconds": time.perf_counter() - started})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="torch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "models").mkdir()
        cluster = Cluster(args.engine, folder / "models", folder / "cluster", folder / "cache")
        try:
            with cluster.api.client(timeout=120) as client:
                rows = timed_rows(client, "running")
                os.kill(cluster.redis.process.pid, signal.SIGSTOP)
                try:
                    rows += timed_rows(client, "frozen (SIGSTOP)")
                finally:
                    os.kill(cluster.redis.process.pid, signal.SIGCONT)
                cluster.redis.kill()
                rows += timed_rows(client, "killed")
        finally:
            cluster.close()
    report("frozen_redis", rows, ["redis", "request", "status", "seconds"])


if __name__ == "__main__":
    main()
