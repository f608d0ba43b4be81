"""Where one projection step's time goes, per layer kind: modulated conv by resolution, up-sampling FIR, noise,
bias + activation, toRGB, VGG16, noise regulariser, Adam, noise renormalisation; FLOP/s per kind; how much of
the step is convolution kernels and how much is everything else.

    python -m bench.profile_step --engine tf1|torch [--size config-f|tiny] [--warmup 1]

torch: torch.profiler events, backward ops attributed to the region of their forward op (sequence number).
tf1: a FULL_TRACE step's op timings, attributed by name scope (gradient ops carry their forward scope).
Regions are the labels both engines set (stylegan2.regions)."""
from __future__ import annotations

import argparse
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np

from bench.common import report
from bench.projection import models, vgg_flops
from stylegan2.layout import GeneratorSpec
from stylegan2.projection import ProjectorConfig
from stylegan2.regions import (
    REGION_ADAM,
    REGION_BIAS_ACT,
    REGION_FIR,
    REGION_NOISE,
    REGION_NOISE_REG,
    REGION_RENORM,
    REGION_VGG,
    layer_region,
)
from stylegan2.toonifier import Toonifier

FIR_TAPS = 16
REGION_NAMES = {REGION_ADAM, REGION_BIAS_ACT, REGION_FIR, REGION_NOISE, REGION_NOISE_REG, REGION_RENORM,
                REGION_VGG, "toRGB"}
REGION_PATTERN = re.compile(r"^(modconv_\d+|%s)(_\d+)?$" % "|".join(sorted(REGION_NAMES)))
CONV_OP = re.compile(r"conv", re.IGNORECASE)
Sample = Tuple[str, str, float]  # (region, op name, seconds)


def region_flops(spec: GeneratorSpec) -> Dict[str, float]:
    """Arithmetic per region and step: forward + the input-gradient pass (no weight gradients are needed:
    only the latents and noise maps are optimised), 2 FLOP per multiply-add."""
    flops: Dict[str, float] = defaultdict(float)
    for layer in spec.layers:
        k = 1 if layer.kind == "rgb" else 3
        pixels = (layer.resolution // 2) ** 2 if layer.kind == "up" else layer.resolution ** 2
        flops[layer_region(layer)] += 2 * 2 * k * k * layer.in_channels * layer.out_channels * pixels
        if layer.kind == "up":
            flops[REGION_FIR] += 2 * 2 * FIR_TAPS * layer.out_channels * layer.resolution ** 2
        if layer.kind == "rgb" and layer.resolution > 4:
            flops[REGION_FIR] += 2 * 2 * FIR_TAPS * spec.num_channels * layer.resolution ** 2
    flops[REGION_VGG] = 2 * vgg_flops(spec.resolution)
    return dict(flops)


def _region_label(name: str) -> str:
    match = REGION_PATTERN.match(name)
    return match.group(1) if match else ""


def torch_samples(toonifier: Toonifier, targets: np.ndarray, warmup: int) -> Tuple[List[Sample], float]:
    """Profile the step after ``warmup`` steps; events' self time per region, and the step's wall time."""
    import torch.profiler

    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    done: List[int] = []

    def on_step(info) -> None:
        done.append(info.step)
        if info.step == warmup:
            profiler.start()
        elif info.step == warmup + 1:
            profiler.stop()

    result = toonifier.project(targets, [0], ProjectorConfig(steps=warmup + 10), on_step=on_step,
                               should_cancel=lambda: len(done) > warmup)
    events = profiler.events()
    forward: Dict[int, str] = {}

    def region(event) -> str:
        while event is not None:
            label = _region_label(event.name)
            if label:
                return label
            if event.name.startswith("autograd::engine::evaluate_function"):
                return forward.get(event.sequence_nr, "backward (unlabelled)")
            event = event.cpu_parent
        return "other"

    for event in events:  # forward ops first: they name the region their backward op belongs to
        if event.sequence_nr >= 0 and not event.name.startswith("autograd::") and region(event) != "other":
            forward.setdefault(event.sequence_nr, region(event))
    samples = [(region(e), e.name, e.self_cpu_time_total / 1e6) for e in events
               if not _region_label(e.name)]
    return samples, result.step_seconds[warmup]


def tf_samples(toonifier: Toonifier, targets: np.ndarray, warmup: int) -> Tuple[List[Sample], float]:
    projector = toonifier.projector(1, ProjectorConfig())
    toonifier.project(targets, [0], ProjectorConfig(steps=warmup + 1))
    stats, wall_s = projector.traced_step()
    graph = toonifier.ffhq.graph
    samples = []
    for device in stats.dev_stats:
        for node in device.node_stats:
            scopes = node.node_name.split("/")
            labels = [label for label in (_region_label(s) for s in scopes) if label]
            if "Adam" in node.node_name:
                labels.append(REGION_ADAM)
            try:
                op_type = graph.get_operation_by_name(node.node_name).type
            except (KeyError, ValueError):
                op_type = node.node_name
            samples.append((labels[-1] if labels else "other", op_type, node.all_end_rel_micros / 1e6))
    return samples, wall_s


def table(samples: Iterable[Sample], wall_s: float, flops: Dict[str, float], engine: str) -> List[Dict[str, object]]:
    time_by: Dict[str, float] = defaultdict(float)
    conv_by: Dict[str, float] = defaultdict(float)
    for region, op, seconds in samples:
        time_by[region] += seconds
        if CONV_OP.search(op):
            conv_by[region] += seconds
    total = sum(time_by.values())

    def order(name: str) -> Tuple[int, int, str]:
        match = re.match(r"modconv_(\d+)", name)
        return (0, int(match.group(1)), "") if match else (1, 0, name)

    rows = []
    for name in sorted(time_by, key=order):
        seconds = time_by[name]
        gflop = flops.get(name, 0.0) / 1e9
        rows.append(dict(engine=engine, region=name, ms=seconds * 1e3, share=seconds / total,
                         conv_ms=conv_by[name] * 1e3, other_ms=(seconds - conv_by[name]) * 1e3,
                         gflop=gflop or None, gflops_per_s=gflop / seconds if gflop and seconds else None))
    conv_total = sum(conv_by.values())
    rows.append(dict(engine=engine, region="TOTAL (op time)", ms=total * 1e3, share=1.0, conv_ms=conv_total * 1e3,
                     other_ms=(total - conv_total) * 1e3, gflop=sum(flops.values()) / 1e9,
                     gflops_per_s=sum(flops.values()) / 1e9 / wall_s))
    rows.append(dict(engine=engine, region="step wall time", ms=wall_s * 1e3))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=["tf1", "torch"], default="torch")
    parser.add_argument("--size", choices=["config-f", "tiny"], default="config-f")
    parser.add_argument("--warmup", type=int, default=1, help="steps before the profiled one")
    parser.add_argument("--name", default="", help="suffix of the JSON file (e.g. before/after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        toonifier = Toonifier(args.engine, models(args.size, Path(tmp)))
        res = toonifier.resolution
        targets = np.random.RandomState(0).randint(0, 256, (1, res, res, 3)).astype(np.uint8)
        profile = torch_samples if args.engine == "torch" else tf_samples
        samples, wall_s = profile(toonifier, targets, args.warmup)
        rows = table(samples, wall_s, region_flops(toonifier.ffhq_spec), args.engine)
    top: Dict[str, float] = defaultdict(float)
    for _, op, seconds in samples:
        top[op] += seconds
    ranked = sorted(top.items(), key=lambda item: -item[1])[:12]
    print("top ops:", ", ".join("%s %.0f ms" % (op, seconds * 1e3) for op, seconds in ranked))
    name = "profile-%s-%s%s" % (args.engine, args.size, "-" + args.name if args.name else "")
    report(name, rows, ["engine", "region", "ms", "share", "conv_ms", "other_ms", "gflop", "gflops_per_s"])


if __name__ == "__main__":
    main()
