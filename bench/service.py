"""Service overhead with tiny models: requests/s and p50/p99 for /healthz, for cached /toonify hits and for a
finished job's pasted photo downloaded as JPEG (a stored PNG in another format) under 32 concurrent clients,
and a full job's wall time vs calling the pipeline directly.

    python -m bench.service [--engine torch] [--requests 640] [--steps 50]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

import httpx

from app.config import Settings
from app.options import ToonifyOptions
from app.toonify import Toonify
from bench.common import report
from stylegan2.tiny import write_tiny_models
from tests.app.server import Server
from tests.conftest import PHOTOS

CLIENTS = 32


def load(fn: Callable[[httpx.Client], httpx.Response], url: str, total: int) -> Dict[str, float]:
    latencies: List[float] = []

    def worker(count: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(count):
                start = time.perf_counter()
                assert fn(client).status_code == 200
                latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(worker, [total // CLIENTS] * CLIENTS))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * len(latencies)) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    photo = (PHOTOS / "astronaut.png").read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        write_tiny_models(models, 0)
        server = Server(args.engine, models, Path(tmp) / "data", Path(tmp) / "cache").start()
        try:
            files = {"image": ("a.png", photo, "image/png")}
            with httpx.Client(base_url=server.url, timeout=300) as client:
                started = time.perf_counter()
                answer = client.post("/toonify", files=files, data={"steps": str(args.steps)})
                job_s = time.perf_counter() - started
                assert answer.status_code == 200
            pasted = "/jobs/%s/result?kind=paste&format=jpeg" % answer.headers["X-Toonify-Job"]
            rows.append(dict(load(lambda c: c.get("/healthz"), server.url, args.requests), endpoint="/healthz"))
            hit = load(lambda c: c.post("/toonify", files=files, data={"steps": str(args.steps)}), server.url,
                       args.requests // 4)
            rows.append(dict(hit, endpoint="/toonify (cached)"))
            jpeg = load(lambda c: c.get(pasted), server.url, args.requests // 4)
            rows.append(dict(jpeg, endpoint="GET paste as JPEG"))
        finally:
            server.stop()
        toonify = Toonify(Settings(engine=args.engine, models_dir=models)).setup()
        options = ToonifyOptions(steps=args.steps)
        started = time.perf_counter()
        toonify.render(toonify.project(photo, options.projection_options), options.render_options)
        direct_s = time.perf_counter() - started
    rows.append({"endpoint": "full job (%d steps)" % args.steps, "job_s": job_s, "direct_pipeline_s": direct_s,
                 "overhead_s": job_s - direct_s})
    report("service", rows, ["endpoint", "requests", "rps", "p50_ms", "p99_ms", "job_s", "direct_pipeline_s",
                             "overhead_s"])


if __name__ == "__main__":
    main()
