"""What live previews cost a projection (issue 27: under 5 %): wall time per step of the same projection with
previews off and on, through the job runner's own path (app.jobs.previews.JobPreviews storing into a SQLite
job store), interleaved round by round (off, on, on, off, …) so that a busy machine slows both alike; medians.
``share_pct``: within each run with previews, their time over the steps' time (what a loaded machine's drift
between runs cannot blur).

    python -m bench.previews --engine tf1|torch [--sizes tiny config-f] [--steps 40] [--rounds 3]
        [--every-s 5 0.01]

``--every-s``: TOONIFY_PREVIEW_EVERY_S values to time (5 is the default; a small one shows the 4 % cap at work).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from app.jobs.job import NewJob
from app.jobs.previews import JobPreviews, PreviewPace
from app.jobs.sqlite_store import SqliteJobStore
from app.options import ToonifyOptions
from bench.common import report
from bench.projection import models
from stylegan2.engines import ENGINES
from stylegan2.projection import ProjectorConfig, StepInfo
from stylegan2.toonifier import Toonifier


def _projection(toonifier: Toonifier, store: SqliteJobStore, job_id: str, steps: int, pace: PreviewPace
                ) -> Tuple[float, int, float]:
    """(wall seconds per step, previews rendered, their time over the steps' time) of one projection of a random
    face; ``pace``: previews on or off, and what this bench's worker remembers of them, as a worker context."""
    res = toonifier.resolution
    target = np.random.RandomState(0).randint(0, 256, (1, res, res, 3)).astype(np.uint8)
    store.reserve(job_id, 1000)
    store.create(job_id, NewJob("", ToonifyOptions(), job_id, []), b"")
    store.claim_next("bench")
    syntheses = []

    def synthesize(latents: np.ndarray, strength: float) -> np.ndarray:
        syntheses.append(strength)
        return toonifier.synthesize(latents, strength)

    previews = JobPreviews(store, job_id, pace, 1.0, synthesize)
    in_previews = []

    def on_step(info: StepInfo) -> None:
        started = time.perf_counter()
        previews.after_step(0, info)
        in_previews.append(time.perf_counter() - started)

    started = time.perf_counter()
    result = toonifier.project(target, [0], ProjectorConfig(steps=steps), on_step)
    seconds = time.perf_counter() - started
    store.finish(job_id, "succeeded")
    # a preview: the toon and the reconstruction; its share: of the projection's time in the same run
    return seconds / steps, len(syntheses) // 2, sum(in_previews) / sum(result.step_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="torch")
    parser.add_argument("--sizes", nargs="+", default=["tiny"], choices=["config-f", "tiny"])
    parser.add_argument("--steps", type=int, default=200, help="steps of each timed projection")
    parser.add_argument("--rounds", type=int, default=3, help="projections with previews off, and as many on")
    parser.add_argument("--every-s", type=float, nargs="+", default=[5.0, 0.01])
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "models").mkdir()
            toonifier = Toonifier(args.engine, models(size, Path(tmp) / "models"))
            store, on = SqliteJobStore(Path(tmp) / "data"), PreviewPace(0.0)  # one worker's memory of costs
            _projection(toonifier, store, "warm-up", 2, on)  # builds the projector, warms the synthesis
            for every_s in args.every_s:
                on.every_s = every_s
                rows.append(_compare(args, size, toonifier, store, on))
    report("previews-%s" % args.engine, rows, ["engine", "size", "steps", "every_s", "off_step_s", "on_step_s",
                                                "overhead_pct", "share_pct", "previews", "rounds"])


def _compare(args: argparse.Namespace, size: str, toonifier: Toonifier, store: SqliteJobStore, on: PreviewPace
             ) -> Dict[str, object]:
    engine, steps, rounds, every_s = args.engine, args.steps, args.rounds, on.every_s
    times: Dict[str, List[float]] = {"off": [], "on": []}
    counts, shares = [], []
    for index in range(rounds):
        for mode in ("off", "on") if index % 2 == 0 else ("on", "off"):
            step_s, count, share = _projection(toonifier, store, "%s-%s-%d" % (mode, every_s, index), steps,
                                              on if mode == "on" else PreviewPace(0.0))
            times[mode].append(step_s)
            if mode == "on":
                counts.append(count)
                shares.append(share)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    row = dict(engine=engine, size=size, resolution=toonifier.resolution, steps=steps, every_s=every_s,
               off_step_s=off, on_step_s=on, overhead_pct=100.0 * (on / off - 1.0),
               previews=statistics.median(counts), share_pct=100.0 * statistics.median(shares), rounds=rounds,
               off_all=times["off"], on_all=times["on"])
    print(row, flush=True)
    return row


if __name__ == "__main__":
    main()
