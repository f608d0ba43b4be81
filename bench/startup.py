"""Cold start (issue #28): process start → service ready (what /readyz waits for: the models loaded and a warm-up
synthesis) → first projection step, each start a fresh process (bench/startup_worker.py), with the w-statistics
cache warm (filled by an earlier start) and cold (an empty cache folder); min and median of several runs, and
the median seconds of each phase the code records (stylegan2.timings).

    python -m bench.startup [--engine tf1 torch] [--size config-f|tiny] [--runs 3] [--cache warm cold]
        [--against REV] [--models DIR] [--out DIR]

--against REV times that revision's code (a temporary git worktree) beside this checkout's, start by start,
alternating which goes first, so a before/after table is measured under the same load. Every start reads the
model files from the page cache (this bench cannot empty it on a shared machine): "cold" is the process and
the w statistics, not the disk."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from bench.common import RESULTS_DIR, report
from bench.compare import REPO, add_worktree, load_average
from bench.startup_models import startup_models

WORKER = Path(__file__).resolve().parent / "startup_worker.py"
# (span, from stamp, to stamp) of the worker's report, in the order a start meets them
SPANS = (("interpreter", "spawned", "started"), ("imports", "started", "imported"),
         ("composition", "imported", "composed"), ("setup", "composed", "ready"),
         ("first step", "ready", "first_step"))
CACHE_FILES = "wstats-*.npz"


def run_once(checkout: Path, engine: str, models: Path, cache: Path, timeout_s: int) -> Dict[str, object]:
    """One start in a fresh process of the engine's venv running ``checkout``'s code: the worker's report, with
    the stamp taken just before the process was spawned."""
    python = REPO / ".venv" / engine / "bin" / "python"
    if not python.exists():  # a checkout without the venvs (the tests' may live elsewhere): this interpreter
        python = Path(sys.executable)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOONIFY_")}
    env.update(PYTHONPATH=str(checkout), TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as data:
        spawned = time.time()
        done = subprocess.run([str(python), str(WORKER), engine, str(models), str(cache), data], cwd=str(checkout),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError("a %s start failed (exit %d): %s" % (engine, done.returncode, done.stderr[-2000:]))
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    result["stamps"]["spawned"] = spawned
    return result


def partition(result: Dict[str, object]) -> Dict[str, float]:
    """Seconds of one start, spawn to first step, cut into parts that add up: the spans before setup, the
    phases recorded in setup and in the first step, and what no phase covers ('setup, other', 'the step')."""
    stamps, setup, step = result["stamps"], result["setup_phases"], result["step_phases"]
    spans = {name: stamps[end] - stamps[begin] for name, begin, end in SPANS}
    parts = {name: spans[name] for name in ("interpreter", "imports", "composition")}
    parts.update(setup)
    parts["setup, other"] = spans["setup"] - sum(setup.values())
    parts.update(step)
    parts["the step"] = spans["first step"] - sum(step.values())
    return parts


def summarize(key: Tuple[str, str, str], starts: List[Dict[str, object]]) -> Dict[str, object]:
    """One row: min and median of the totals, the median of every part and the largest parts' shares."""
    engine, cache, label = key
    ready = [s["stamps"]["ready"] - s["stamps"]["spawned"] for s in starts]
    first = [s["stamps"]["first_step"] - s["stamps"]["spawned"] for s in starts]
    parts = [partition(s) for s in starts]
    medians = {name: statistics.median(p.get(name, 0.0) for p in parts) for name in parts[0]}
    largest = sorted(medians, key=lambda name: -medians[name])[:5]
    return dict(engine=engine, cache=cache, revision=label, runs=len(starts), ready_min_s=min(ready),
                ready_median_s=statistics.median(ready), first_step_min_s=min(first),
                first_step_median_s=statistics.median(first),
                ready_cpu_median_s=statistics.median(s["ready_cpu_s"] for s in starts),
                peak_rss_mb=max(s["peak_rss_mb"] for s in starts), parts_median_s=medians,
                largest=", ".join("%s %.0f%%" % (name, 100 * medians[name] / statistics.median(first))
                                  for name in largest))


def _fresh(tmp: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=str(tmp), prefix="cold-"))


def _keep_statistics(cold: Path, warm: Path) -> None:
    """The w statistics a cold start wrote become the warm starts' cache (once)."""
    if not any(warm.glob(CACHE_FILES)):
        for path in cold.glob(CACHE_FILES):
            shutil.copy(str(path), str(warm / path.name))


def measure(args: argparse.Namespace, sides: Sequence[Tuple[str, Path]], tmp: Path) -> List[Dict[str, object]]:
    """Every (cache, revision) start of each engine, round by round, each round in the reverse order of the
    last, so that neither side nor cache state always runs first."""
    models = args.models or startup_models(args.size)
    starts: Dict[Tuple[str, str, str], List[Dict[str, object]]] = {}
    loads = [load_average()[0]]
    for engine in args.engine:
        warm = tmp / ("warm-" + engine)
        warm.mkdir()
        for round_index in range(args.runs):
            order = 1 if round_index % 2 == 0 else -1
            for cache in args.cache[::order]:
                for label, checkout in sides[::order]:
                    if cache == "warm" and not any(warm.glob(CACHE_FILES)):  # an untimed cold start fills it
                        primed = _fresh(tmp)
                        run_once(checkout, engine, models, primed, args.timeout)
                        _keep_statistics(primed, warm)
                    folder = warm if cache == "warm" else _fresh(tmp)
                    result = run_once(checkout, engine, models, folder, args.timeout)
                    _keep_statistics(folder, warm)
                    starts.setdefault((engine, cache, label), []).append(result)
                    loads.append(load_average()[0])
                    print("%s %s %s round %d: ready %.1f s, first step %.1f s (load %.1f)" % (
                        engine, cache, label, round_index, result["stamps"]["ready"] - result["stamps"]["spawned"],
                        result["stamps"]["first_step"] - result["stamps"]["spawned"], loads[-1]), flush=True)
    rows = [summarize(key, runs) for key, runs in starts.items()]
    for row in rows:
        row["load_avg"] = "%.1f-%.1f" % (min(loads), max(loads))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", nargs="+", default=["tf1", "torch"], choices=["tf1", "torch"])
    parser.add_argument("--size", choices=["config-f", "tiny"], default="config-f")
    parser.add_argument("--runs", type=int, default=3, help="starts per (engine, cache, revision)")
    parser.add_argument("--cache", nargs="+", default=["cold", "warm"], choices=["cold", "warm"],
                        help="the w-statistics cache: empty (cold) or filled by an earlier start (warm)")
    parser.add_argument("--against", default=None, help="another revision, timed beside this checkout")
    parser.add_argument("--timeout", type=int, default=900, help="seconds one start may take")
    parser.add_argument("--models", type=Path, default=None, help="a folder of the three model files, instead "
                        "of --size's (the tests: their tiny models)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where startup-<size>.json goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sides: List[Tuple[str, Path]] = [("this checkout", REPO)]
        if args.against:
            sides.insert(0, (args.against, add_worktree(args.against, Path(tmp))))
        try:
            rows = measure(args, sides, Path(tmp))
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(sides[0][1])], cwd=str(REPO))
    report("startup-%s" % args.size, rows, ["engine", "cache", "revision", "runs", "ready_min_s", "ready_median_s",
                                            "first_step_min_s", "first_step_median_s", "largest", "load_avg"],
           args.out)


if __name__ == "__main__":
    main()
