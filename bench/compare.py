"""Projection step time of this checkout against another revision, both engines, interleaved in one run, so
that a speed claim is a ratio measured side by side (the machine's load hits both sides alike).

    python -m bench.compare REV [--engines tf1 torch] [--rounds 3] [--steps 3] [--size config-f|tiny]

REV is checked out into a temporary git worktree. One long-lived worker per (revision, engine) holds its
models (bench/compare_worker.py, running that revision's code); each round asks every worker for one short
projection, alternating which revision goes first. Also checks that both revisions render the same pixels
(max abs difference of a config-f synthesis) and start from the same loss."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from bench.common import report
from bench.projection import models

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "compare_worker.py"


class Worker:
    """A compare_worker process for one (revision, engine)."""

    def __init__(self, label: str, checkout: Path, engine: str, paths) -> None:
        self.label, self.engine = label, engine
        python = REPO / ".venv" / engine / "bin" / "python"
        env = dict(os.environ, PYTHONPATH=str(checkout), TF_CPP_MIN_LOG_LEVEL="2")
        self.process = subprocess.Popen([str(python), str(WORKER), engine, str(paths.ffhq), str(paths.perceptual)],
                                        cwd=str(checkout), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        universal_newlines=True)
        self._read()

    def _read(self) -> Dict[str, object]:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("%s %s worker exited (code %s)" % (self.label, self.engine, self.process.wait()))
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, **request) -> Dict[str, object]:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _git(*args: str) -> str:
    return subprocess.run(["git"] + list(args), cwd=str(REPO), check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


def add_worktree(rev: str, into: Path) -> Path:
    checkout = into / "rev"
    subprocess.run(["git", "worktree", "add", "--detach", str(checkout), rev], cwd=str(REPO), check=True,
                   stdout=subprocess.DEVNULL)
    return checkout


def load_average() -> Tuple[float, float, float]:
    return os.getloadavg()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the other revision, e.g. main or 3e55ea0")
    parser.add_argument("--engines", nargs="+", default=["tf1", "torch"], choices=["tf1", "torch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per projection; the first is not timed")
    parser.add_argument("--size", choices=["config-f", "tiny"], default="config-f")
    args = parser.parse_args()
    head = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        head += "+changes"
    with tempfile.TemporaryDirectory() as tmp:
        checkout = add_worktree(args.rev, Path(tmp))
        try:
            rows = compare(args, checkout, Path(tmp), head)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=str(REPO))
    report("compare-%s" % args.size, rows, ["engine", "revision", "step_s", "ratio", "steps_timed", "peak_rss_mb",
                                           "max_abs_pixel_diff", "first_loss_rel_diff", "load_avg"])


def compare(args: argparse.Namespace, checkout: Path, tmp: Path, head: str) -> List[Dict[str, object]]:
    paths = models(args.size, tmp)
    sides = [(args.rev, checkout), ("%s (this checkout)" % head, REPO)]
    rows = []
    for engine in args.engines:
        workers = [Worker(label, where, engine, paths) for label, where in sides]
        times: Dict[str, List[float]] = {w.label: [] for w in workers}
        first_losses: Dict[str, float] = {}
        peak: Dict[str, float] = {}
        loads = [load_average()[0]]
        for round_index in range(args.rounds):
            for worker in (workers if round_index % 2 == 0 else workers[::-1]):
                reply = worker.ask(cmd="steps", steps=args.steps)
                times[worker.label] += reply["step_seconds"][1:]
                first_losses[worker.label] = reply["losses"][0][0]
                peak[worker.label] = reply["peak_rss_mb"]
                print("%s %s round %d: %s" % (engine, worker.label, round_index,
                                               ["%.2f" % s for s in reply["step_seconds"]]), flush=True)
            loads.append(load_average()[0])
        images = []
        for worker in workers:
            out = str(tmp / ("%s-%d.npy" % (engine, len(images))))
            worker.ask(cmd="render", seed=5, out=out)
            images.append(np.load(out))
            worker.close()
        pixel_diff = float(np.abs(images[0] - images[1]).max())
        base = statistics.median(times[workers[0].label])
        old_loss = first_losses[workers[0].label]
        for worker in workers:
            step_s = statistics.median(times[worker.label])
            rows.append(dict(engine=engine, revision=worker.label, step_s=step_s, ratio=step_s / base,
                             steps_timed=len(times[worker.label]), peak_rss_mb=peak[worker.label],
                             max_abs_pixel_diff=pixel_diff,
                             first_loss_rel_diff=abs(first_losses[worker.label] - old_loss) / abs(old_loss),
                             load_avg="%.1f-%.1f" % (min(loads), max(loads))))
    return rows


if __name__ == "__main__":
    main()
