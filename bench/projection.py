"""Time per projection step (forward + backward + Adam + noise renormalisation), config-f and tiny sizes,
batch 1 and 4 (per-face time): median of several steps after warm-up.

    python -m bench.projection --engine tf1|torch [--steps 4] [--batch 1 4] [--sizes config-f tiny]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.common import config_f_pickle, report
from stylegan2 import pickles
from stylegan2.engines import ENGINES
from stylegan2.model_files import ModelPaths
from stylegan2.perceptual import VGG16_CHANNELS, random_perceptual
from stylegan2.projection import ProjectorConfig
from stylegan2.tiny import write_tiny_models
from stylegan2.toonifier import Toonifier


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
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            toonifier = Toonifier(args.engine, models(size, Path(tmp)))
            res = toonifier.resolution
            synthesis_gflop = 148.52 if res == 1024 else 0.0
            for batch in args.batch:
                targets = np.random.RandomState(0).randint(0, 256, (batch, res, res, 3)).astype(np.uint8)
                config = ProjectorConfig(steps=args.steps + 1)
                result = toonifier.project(targets, list(range(batch)), config)
                step_s = statistics.median(result.step_seconds[1:])
                row = dict(engine=args.engine, size=size, resolution=res, batch=batch, step_s=step_s,
                           per_face_step_s=step_s / batch, first_step_s=result.step_seconds[0])
                if synthesis_gflop:
                    flops = step_flops(res, synthesis_gflop) * batch
                    row.update(gflop_per_step=flops / 1e9, gflops_per_s=flops / 1e9 / step_s)
                rows.append(row)
                print(row, flush=True)
    report("projection-%s" % args.engine, rows, ["engine", "size", "batch", "step_s", "per_face_step_s",
                                                  "first_step_s", "gflop_per_step", "gflops_per_s"])


if __name__ == "__main__":
    main()
