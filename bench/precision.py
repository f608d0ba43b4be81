"""The quality guard of the projection precisions (issue #28): the same face projected for N steps at fp32 and at
each lower precision, then judged in fp32 — the perceptual distance of each result's fp32 re-render to the
target (it must stay within 3 % of the fp32 run's), and how far its pixels are from the fp32 run's render.

    python -m bench.precision [--size config-f|tiny] [--steps 30] [--precision bf16 fp16 …] [--device cpu|cuda]

The target is the aligned Obama face of tests/fixtures/alignment; the generator is the random config-f pickle of
bench.common (or the tiny models) and the perceptual net a random stand-in of VGG16's shape, as in
bench.projection: the arithmetic is the real one, the weights are not."""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from bench.common import report
from bench.projection import models
from stylegan2.precision import FP32, PRECISIONS
from stylegan2.projection import ProjectorConfig
from stylegan2.toonifier import Toonifier

TARGET = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "alignment" / "obama_01.png"
MAX_DISTANCE_RATIO = 1.03  # a lower precision's result may be at most 3 % further from the target than fp32's


@dataclass
class Outcome:
    precision: str
    distance: float  # fp32 LPIPS of the result's fp32 re-render to the target
    image: np.ndarray  # uint8 [R, R, 3]: that re-render
    step_s: float


def aligned_target(resolution: int) -> np.ndarray:
    """uint8 [1, R, R, 3]: the aligned fixture face at the model's resolution."""
    image = Image.open(str(TARGET)).convert("RGB")
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(image)[None]


def project_at(toonifier: Toonifier, target: np.ndarray, steps: int, precision: str) -> Outcome:
    config = ProjectorConfig(steps=steps, precision=precision)
    result = toonifier.project(target, [0], config)
    render = toonifier.projector(1, config).reconstruction()  # the optimised latents and noise, in fp32
    nchw = [np.transpose(a, (0, 3, 1, 2)).astype(np.float32) for a in (render, target)]
    distance = toonifier.backend.lpips_distance(toonifier.perceptual, *nchw)[0]
    return Outcome(precision, distance, render[0], float(np.median(result.step_seconds[1:])))


def guard(toonifier: Toonifier, target: np.ndarray, steps: int, precisions: Sequence[str]) -> List[Dict]:
    """One row per precision, fp32 first: its fp32-judged distance, the ratio to fp32's, the pixel difference of
    the renders (mean and max, in 8-bit levels), and whether the 3 % bound holds."""
    baseline = project_at(toonifier, target, steps, FP32)
    rows = []
    for outcome in [baseline] + [project_at(toonifier, target, steps, p) for p in precisions if p != FP32]:
        difference = np.abs(outcome.image.astype(np.int16) - baseline.image.astype(np.int16))
        ratio = outcome.distance / baseline.distance
        rows.append(dict(precision=outcome.precision, steps=steps, distance=outcome.distance, vs_fp32=ratio,
                         mean_abs_levels=float(difference.mean()), max_abs_levels=int(difference.max()),
                         step_s=outcome.step_s, holds=bool(ratio <= MAX_DISTANCE_RATIO)))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="torch", choices=["torch", "tf1"])
    parser.add_argument("--size", default="config-f", choices=["config-f", "tiny"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", nargs="+", default=[p for p in PRECISIONS if p != FP32], choices=PRECISIONS)
    parser.add_argument("--device", default=None, help="cpu, cuda (torch); default CUDA when available")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        toonifier = Toonifier(args.engine, models(args.size, Path(tmp)), device=args.device)
        offered = [p for p in args.precision if _offered(toonifier, p)]
        rows = guard(toonifier, aligned_target(toonifier.resolution), args.steps, offered)
    for row in rows:
        row.update(engine=args.engine, size=args.size)
    report("precision-%s-%s" % (args.engine, args.size), rows,
           ["engine", "size", "precision", "steps", "distance", "vs_fp32", "mean_abs_levels", "max_abs_levels",
            "step_s", "holds"])


def _offered(toonifier: Toonifier, precision: str) -> bool:
    try:
        return toonifier.precision(precision) == precision
    except ValueError as exc:
        print("skipped: %s" % exc)
        return False


if __name__ == "__main__":
    main()
