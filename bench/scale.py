"""Throughput of the Redis queue: jobs/minute with 1 and 2 workers on tiny models (CPU), against the
single-process local queue with the same jobs, to show what the queue itself costs.

Each worker (and the local server) gets ``--threads`` CPU threads, so on a machine with 2+ cores two workers
have cores of their own and the 1 → 2 scaling is visible.

    python -m bench.scale [--engine torch] [--jobs 12] [--steps 200] [--threads 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import httpx

from bench.common import report
from stylegan2.tiny import write_tiny_models
from tests.app.scale import Cluster
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

PHOTO = (PHOTOS / "astronaut.png").read_bytes()


def run_jobs(client: httpx.Client, jobs: int, steps: int, first_seed: int) -> Dict[str, float]:
    """Submit ``jobs`` distinct jobs at once; wall time from the first submit to the last success."""
    started = time.perf_counter()
    ids = []
    for seed in range(first_seed, first_seed + jobs):
        response = client.post("/toonify?async=1", files={"image": ("a.png", PHOTO, "image/png")},
                               data={"steps": str(steps), "seed": str(seed)})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for job_id in ids:
        assert wait_for(client, job_id, timeout_s=3600)["status"] == "succeeded"
    wall_s = time.perf_counter() - started
    return {"jobs": jobs, "wall_s": wall_s, "jobs_per_min": 60.0 * jobs / wall_s}


def thread_env(threads: int) -> Dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models, cache = folder / "models", folder / "cache"
        write_tiny_models(models, 0)
        local = Server(args.engine, models, folder / "local-data", cache)
        local.env.update(thread_env(args.threads))
        local.start()
        try:
            with local.client() as client:
                run_jobs(client, 1, args.steps, 10_000)  # warm: w-stats cache, first-call costs
                rows.append(dict(run_jobs(client, args.jobs, args.steps, 0), setup="local (in-process)", workers=1))
        finally:
            local.stop()
        for count in (1, 2):
            cluster = Cluster(args.engine, models, folder / ("redis-%d" % count), cache)
            cluster.workers.env.update(thread_env(args.threads))
            names = ["w%d" % n for n in range(1, count + 1)]
            try:
                cluster.workers.start(*names)
                with cluster.api.client() as client:
                    cluster.wait_for_workers(client, names)
                    run_jobs(client, count, args.steps, 10_000)  # one warm-up job per worker
                    rows.append(dict(run_jobs(client, args.jobs, args.steps, 0), setup="redis + RQ",
                                     workers=count))
            finally:
                cluster.close()
    base = rows[0]["jobs_per_min"]
    for row in rows:
        row["vs_local"] = row["jobs_per_min"] / base  # type: ignore[operator]
    print("engine %s, %d steps per job, %d thread(s) per worker" % (args.engine, args.steps, args.threads))
    report("scale", rows, ["setup", "workers", "jobs", "wall_s", "jobs_per_min", "vs_local"])


if __name__ == "__main__":
    main()
