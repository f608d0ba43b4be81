"""Memory per face of a projection step at config-f: on paper (stylegan2/memory.py) and measured.

The measure is the peak resident memory of a CPU process (the proxy for device memory here) that loads
config-f and the full VGG16, then runs projection steps at batch 1 and at batch 2, each in its own process:
per face = peak(2) - peak(1). On a GPU the same difference is what the device allocator needs.

    python -m bench.memory --engine tf1|torch [--steps 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import config_f_pickle, report
from stylegan2 import pickles
from stylegan2.engines import ENGINES
from stylegan2.layout import describe
from stylegan2.memory import bytes_per_face
from stylegan2.model_files import ModelPaths
from stylegan2.perceptual import VGG16_CHANNELS, random_perceptual
from stylegan2.projection import ProjectorConfig
from stylegan2.toonifier import Toonifier

MB = 1 << 20


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def measure(engine: str, batch: int, steps: int) -> dict:
    """In this process: load, note the peak, project ``steps`` steps, note the peak again."""
    with tempfile.TemporaryDirectory() as tmp:
        perceptual = Path(tmp) / "vgg16-full.pkl"
        pickles.save(random_perceptual(0, VGG16_CHANNELS), perceptual)
        toonifier = Toonifier(engine, ModelPaths(config_f_pickle(), None, perceptual))
        loaded = peak_rss_bytes()
        targets = np.random.RandomState(0).randint(0, 256, (batch, 1024, 1024, 3)).astype(np.uint8)
        toonifier.project(targets, list(range(batch)), ProjectorConfig(steps=steps))
        return {"loaded_peak": loaded, "projected_peak": peak_rss_bytes()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="torch")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--measure-batch", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure_batch is not None:
        print(json.dumps(measure(args.engine, args.measure_batch, args.steps)))
        return
    peaks = {}
    for batch in (1, 2):
        out = subprocess.run([sys.executable, "-m", "bench.memory", "--engine", args.engine, "--steps",
                              str(args.steps), "--measure-batch", str(batch)], capture_output=True, text=True,
                             check=True)
        peaks[batch] = json.loads(out.stdout.strip().splitlines()[-1])
    paper = bytes_per_face(describe(pickles.load_generator(config_f_pickle())), VGG16_CHANNELS)
    measured = peaks[2]["projected_peak"] - peaks[1]["projected_peak"]
    rows = [dict(engine=args.engine, batch=batch, loaded_peak_mb=peaks[batch]["loaded_peak"] / MB,
                 projected_peak_mb=peaks[batch]["projected_peak"] / MB) for batch in (1, 2)]
    rows.append(dict(engine=args.engine, batch="per face", projected_peak_mb=measured / MB,
                     paper_mb=paper / MB))
    report("memory-%s" % args.engine, rows, ["engine", "batch", "loaded_peak_mb", "projected_peak_mb", "paper_mb"])


if __name__ == "__main__":
    main()
