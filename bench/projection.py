"""Time per projection step (forward + backward + Adam + noise renormalisation), config-f and tiny sizes,
batch 1 and 4 (per-face time): median of several steps after warm-up.

    python -m bench.projection --engine tf1|torch [--steps 4] [--batch 1 4] [--sizes config-f tiny]
        [--precision fp32 bf16 …] [--rounds N]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

from bench.common import config_f_pickle, report
from stylegan2 import pickles
from stylegan2.engines import ENGINES
from stylegan2.model_files import ModelPaths
from stylegan2.perceptual import VGG16_CHANNELS, random_perceptual
from stylegan2.precision import CHOICES, FP32
from stylegan2.projection import ProjectorConfig
from stylegan2.tiny import write_tiny_models
from stylegan2.toonifier import Toonifier

CONFIG_F_SYNTHESIS_GFLOP = 148.52  # one config-f synthesis forward (bench/RESULTS.md, "Synthesis")


def vgg_flops(resolution: int) -> float:
    """FLOPs of one VGG16 forward on the 256² (or smaller) perceptual input."""
    side = min(resolution, 256)
    vgg = 0.0
    in_c = 3
    for block, (convs, out_c) in enumerate(zip((2, 2, 3, 3, 3), VGG16_CHANNELS)):
        pixels = (side // 2 ** block) ** 2
        for _ in range(convs):
            vgg += 2 * 9 * in_c * out_c * pixels
            in_c = out_c
    return vgg


def step_flops(resolution: int, synthesis_gflop: float) -> float:
    """FLOPs of one step ≈ 3 × synthesis forward (forward + both backward products) + 3 × VGG16 on the
    256² (or smaller) perceptual input; the target's features are computed once."""
    return 3 * synthesis_gflop * 1e9 + 3 * vgg_flops(resolution)


def models(size: str, workdir: Path) -> ModelPaths:
    if size == "tiny":
        write_tiny_models(workdir, 0)
        return ModelPaths.in_dir(workdir)
    perceptual = workdir / "vgg16-full.pkl"
    pickles.save(random_perceptual(0, VGG16_CHANNELS), perceptual)
    return ModelPaths(config_f_pickle(), None, perceptual)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="tf1")
    parser.add_argument("--steps", type=int, default=4, help="timed steps (after one warm-up projection step)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sizes", nargs="+", default=["config-f", "tiny"], choices=["config-f", "tiny"])
    parser.add_argument("--precision", nargs="+", default=[FP32], choices=CHOICES,
                        help="several: interleaved, round by round, and each timed against the first")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every (batch, precision)")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            toonifier = Toonifier(args.engine, models(size, Path(tmp)))
            precisions = [toonifier.precision(name) for name in args.precision]
            for batch in args.batch:
                steps: Dict[str, List[float]] = {name: [] for name in precisions}
                for _ in range(args.rounds):
                    for name in precisions:
                        steps[name].extend(_step_seconds(toonifier, batch, args.steps, name))
                rows.extend(_rows(args.engine, size, toonifier.resolution, batch, steps))
    report("projection-%s" % args.engine, rows, ["engine", "size", "batch", "precision", "step_s", "per_face_step_s",
                                                  "vs_first", "gflop_per_step", "gflops_per_s"])


def _step_seconds(toonifier: Toonifier, batch: int, steps: int, precision: str) -> List[float]:
    """Seconds of each step after the first (which builds and warms up) of one projection."""
    res = toonifier.resolution
    targets = np.random.RandomState(0).randint(0, 256, (batch, res, res, 3)).astype(np.uint8)
    result = toonifier.project(targets, list(range(batch)), ProjectorConfig(steps=steps + 1, precision=precision))
    return result.step_seconds[1:]


def _rows(engine: str, size: str, resolution: int, batch: int, steps: Dict[str, List[float]]) -> List[Dict]:
    rows = []
    first = statistics.median(next(iter(steps.values())))
    for name, seconds in steps.items():
        step_s = statistics.median(seconds)
        row = dict(engine=engine, size=size, resolution=resolution, batch=batch, precision=name, step_s=step_s,
                   per_face_step_s=step_s / batch, vs_first=step_s / first)
        if resolution == 1024:
            flops = step_flops(resolution, CONFIG_F_SYNTHESIS_GFLOP) * batch
            row.update(gflop_per_step=flops / 1e9, gflops_per_s=flops / 1e9 / step_s)
        rows.append(row)
        print(row, flush=True)
    return rows


if __name__ == "__main__":
    main()
