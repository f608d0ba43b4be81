"""Fast mode vs the projection path, side by side in one run (issue #18).

    python -m bench.student --engine tf1|torch [--sizes 256 512 1024] [--repeats 3] [--projection-steps 2]
    python -m bench.student --budget        # paper table: params, activations, FLOPs for an 8 GB card

Rows: the student's forward per face at each size (random weights of the default architecture: the cost
does not depend on the values); a whole fast-mode request (decode → detect → align → student → paste) on a
512² photo at 512²; and one projection step at config-f (random weights, our writer) for the ratio. Peak
resident memory of the process is reported beside the times.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from bench.common import config_f_pickle, median_seconds, report
from stylegan2.engines import ENGINES, backend
from stylegan2.projection import DEFAULT_STEPS
from stylegan2.student import DEFAULT_CHANNELS, forward_flops, init_student
from tests.conftest import PHOTOS

RTX_2070 = {"name": "RTX 2070 (8 GB)", "memory_gb": 8.0, "fp16_tflops": 59.7, "fp32_tflops": 7.5}
ASSUMED_UTILISATION = 0.3  # convolution nets of this size reach ~25–40 % of the tensor-core peak
PAIRS = 10000
EPOCHS = 20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def budget_rows(channels=DEFAULT_CHANNELS) -> List[Dict[str, object]]:
    """Per resolution: parameters, training activations at a batch that fits, FLOPs, hours for PAIRS×EPOCHS."""
    rows = []
    for side in (256, 512, 1024):
        spec = init_student(side, channels)
        cost = forward_flops(spec, side)
        lpips_side = min(side, 256)
        lpips_flops = 2 * 15.5e9 * (lpips_side / 224.0) ** 2  # VGG16 ≈ 15.5 GMAC at 224², student and target
        # fp16 activations ×2 (the saved tensor and its gradient) + LPIPS activations (~3× its input's VGG maps)
        act_bytes = cost["activation_floats"] * 2 * 2 + 2 * 13e6 * (lpips_side / 224.0) ** 2 * 2
        fixed_gb = 1.2  # CUDA context, cuDNN workspace, weights + Adam state (tiny) and the VGG weights
        batch = int(max(1, min(64, (RTX_2070["memory_gb"] * 0.8 - fixed_gb) * 1e9 // act_bytes)))
        step_flops = batch * (3 * cost["flops"] + 2 * lpips_flops)  # forward + backward ≈ 3× forward
        step_s = step_flops / (RTX_2070["fp16_tflops"] * 1e12 * ASSUMED_UTILISATION)
        steps = PAIRS * EPOCHS / batch
        rows.append({"resolution": side, "params_M": spec.num_params / 1e6, "student_gflop": cost["flops"] / 1e9,
                     "train_act_mb_per_image": act_bytes / 1e6, "batch_in_8gb": batch,
                     "step_s": step_s, "hours_%dk_pairs_x%d" % (PAIRS // 1000, EPOCHS): steps * step_s / 3600,
                     "fp32_inference_ms": cost["flops"] / (RTX_2070["fp32_tflops"] * 1e12 * ASSUMED_UTILISATION)
                     * 1e3})
    return rows


def with_cpu_seconds(fn, repeats: int) -> Dict[str, float]:
    """Wall seconds (median) and the process's CPU seconds per call (user + system, all threads): on a shared
    machine the wall time is an upper bound, and CPU seconds / cores is what a quiet machine would take."""
    started = time.process_time()
    timing = median_seconds(fn, repeats)
    timing["cpu_s"] = (time.process_time() - started) / (repeats + 1)
    return timing


def fast_request_seconds(engine: str, side: int, repeats: int) -> Dict[str, float]:
    from app.config import Settings
    from app.faces.detect import FaceDetector
    from app.fast import FastMode
    from app.options import ToonifyOptions

    fast = FastMode(Settings(engine=engine), FaceDetector()).use(backend(engine).Student(init_student(side)))
    data = (PHOTOS / "astronaut.png").read_bytes()
    options = ToonifyOptions(output="paste")
    stages: Dict[str, List[float]] = {}

    def run() -> None:
        result = fast.toonify(data, options)
        for name, seconds in result.stage_seconds.items():
            stages.setdefault(name, []).append(seconds)

    timing = with_cpu_seconds(run, repeats)
    timing.update({"stage_%s_s" % name: float(np.median(values)) for name, values in stages.items()})
    return timing


def projection_step_seconds(engine: str, steps: int) -> float:
    from stylegan2 import pickles
    from stylegan2.model_files import ModelPaths
    from stylegan2.perceptual import VGG16_CHANNELS, random_perceptual
    from stylegan2.projection import ProjectorConfig
    from stylegan2.toonifier import Toonifier

    with tempfile.TemporaryDirectory() as folder:
        perceptual = Path(folder) / "vgg.pkl"
        pickles.save(random_perceptual(0, VGG16_CHANNELS), perceptual)
        toonifier = Toonifier(engine, ModelPaths(config_f_pickle(), None, perceptual), Path(folder))
        target = np.random.RandomState(0).randint(0, 256, [1, 1024, 1024, 3]).astype(np.uint8)
        result = toonifier.project(target, [0], ProjectorConfig(steps=steps + 1))
    return float(np.median(result.step_seconds[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="tf1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--projection-steps", type=int, default=2, help="0 skips the projection row")
    parser.add_argument("--budget", action="store_true", help="print the RTX 2070 training budget (no timing)")
    args = parser.parse_args()
    if args.budget:
        rows = budget_rows()
        report("student-budget", rows, list(rows[0]))
        return
    rows = []
    for side in args.sizes:
        student = backend(args.engine).Student(init_student(side))
        faces = np.random.RandomState(0).randint(0, 256, [1, side, side, 3]).astype(np.uint8)
        timing = with_cpu_seconds(lambda s=student, f=faces: s.toonify(f), args.repeats)
        rows.append(dict(engine=args.engine, what="student forward", size=side,
                         gflop=forward_flops(student.spec, side)["flops"] / 1e9, peak_mb=peak_mb(), **timing))
    timing = fast_request_seconds(args.engine, 512, args.repeats)
    rows.append(dict(engine=args.engine, what="fast request (photo 512², face 512²)", size=512, peak_mb=peak_mb(),
                     **timing))
    if args.projection_steps:
        step = projection_step_seconds(args.engine, args.projection_steps)
        rows.append(dict(engine=args.engine, what="projection step (config-f)", size=1024, median_s=step,
                         peak_mb=peak_mb(), note="x%d steps = %.0f s per face" % (DEFAULT_STEPS, DEFAULT_STEPS * step)))
    columns = ["engine", "what", "size", "gflop", "median_s", "min_s", "cpu_s", "peak_mb"]
    columns += sorted({k for row in rows for k in row if k.startswith("stage_")}) + ["note"]
    report("student-%s" % args.engine, rows, columns)


if __name__ == "__main__":
    main()
