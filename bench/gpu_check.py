"""The GPU check (issue #28): everything a lent GPU should tell us, in one command of a few minutes.

    python -m bench.gpu_check [--out DIR]            # CUDA, config-f (a random pickle written here)
    python -m bench.gpu_check --tiny --device cpu    # the same checks on the tiny models, on the CPU (the tests)

It needs only torch, numpy, pillow and scipy (no dlib, no TensorFlow, no network), and reports:
1. the device (name, compute capability, memory) and the precisions it offers;
2. fidelity: the torch engine's synthesis on the device against its own CPU output for the same W+;
3. projection step time at batch 1/2/4/8 for every precision offered, with peak device memory per face;
4. the quality guard (bench.precision) on the device: each precision's distance against fp32's;
5. out-of-memory halving: under an artificial memory limit a batch of 8 runs out, app.batches halves it
   and the faces still project;
6. synthesis images per second.
Each part is written to ``gpu-check.json`` as soon as it is done, so a run cut short keeps what it measured."""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch

from app.batches import BatchOutOfMemory, BatchPlan
from bench.common import RESULTS_DIR, machine, report
from bench.precision import aligned_target, guard
from bench.projection import models
from stylegan2.memory import bytes_per_face
from stylegan2.precision import PRECISIONS, supported
from stylegan2.projection import ProjectorConfig
from stylegan2.sampling import broadcast, latents_from_seeds
from stylegan2.toonifier import Toonifier
from stylegan2.torch.precision import device_traits

T = TypeVar("T")
FIDELITY_TOLERANCE = 1e-3  # max |Δ| of [-1, 1] images, device against CPU, strict fp32 on both
OOM_BATCH = 8


class Check:
    """The report being built: one JSON object, rewritten after every part."""

    def __init__(self, out: Path) -> None:
        self.path, self.data = out / "gpu-check.json", {"machine": machine()}  # type: Path, Dict[str, object]
        out.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    def part(self, name: str, value: object) -> None:
        self.data[name] = value
        self.data["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.path.write_text(json.dumps(self.data, indent=1))
        print("[%6.1f s] %s: %s" % (self.data["elapsed_s"], name, json.dumps(value)[:300]), flush=True)


def device_facts(device: torch.device, toonifier: Toonifier) -> Dict[str, object]:
    facts: Dict[str, object] = {"torch": torch.__version__, "device": str(device),
                                "precisions": list(supported("torch", device_traits(toonifier.ffhq)))}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(name=props.name, capability=list(torch.cuda.get_device_capability(device)),
                     memory_gb=round(props.total_memory / 1e9, 1), cuda=torch.version.cuda)
    return facts


def w_plus(toonifier: Toonifier, seeds: Sequence[int]) -> np.ndarray:
    """W+ [N, num_ws, 512] of the seeds' z, mapped on the device."""
    z, _ = latents_from_seeds(toonifier.ffhq_spec, seeds, False)
    return broadcast(toonifier.ffhq.map(z), toonifier.num_ws)


def fidelity(toonifier: Toonifier, paths, device: torch.device) -> Dict[str, object]:
    """Max |Δ| between the device's synthesis and a CPU generator's for the same W+ (seeds 0 and 1)."""
    ws = w_plus(toonifier, [0, 1])
    on_device = toonifier.ffhq.synthesize(ws)
    on_cpu = Toonifier("torch", paths, device="cpu").ffhq.synthesize(ws) if device.type != "cpu" else on_device
    difference = float(np.abs(on_device - on_cpu).max())
    return {"max_abs": difference, "tolerance": FIDELITY_TOLERANCE, "holds": difference <= FIDELITY_TOLERANCE,
            "against": "cpu" if device.type != "cpu" else "itself (no CUDA)"}


def _with_peak(device: torch.device, run: Callable[[], T]) -> Tuple[T, Optional[int]]:
    """``run()``, and the peak device memory it allocated beyond what was held before it (None on the CPU)."""
    if device.type != "cuda":
        return run(), None
    torch.cuda.synchronize(device)
    held = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    value = run()
    torch.cuda.synchronize(device)
    return value, torch.cuda.max_memory_allocated(device) - held


def step_times(toonifier: Toonifier, device: torch.device, batches: Sequence[int], steps: int,
               precisions: Sequence[str]) -> List[Dict[str, object]]:
    rows = []
    res = toonifier.resolution
    for batch in batches:
        targets = np.random.RandomState(batch).randint(0, 256, (batch, res, res, 3)).astype(np.uint8)
        for precision in precisions:
            config = ProjectorConfig(steps=steps + 1, precision=precision)
            result, peak = _with_peak(device, partial(toonifier.project, targets, list(range(batch)), config))
            step_s = statistics.median(result.step_seconds[1:])
            rows.append(dict(batch=batch, precision=precision, step_s=step_s, per_face_step_s=step_s / batch,
                             peak_gb_per_face=None if peak is None else round(peak / batch / 1e9, 3)))
            print(rows[-1], flush=True)
    return rows


def oom_halving(toonifier: Toonifier, device: torch.device, per_face: int) -> Dict[str, object]:
    """A batch of OOM_BATCH faces under a memory limit that holds about two (``per_face`` bytes each): the
    engine's own out-of-memory error on CUDA (torch's per-process memory fraction), the budget check on the CPU;
    app.batches halves it."""
    res = toonifier.resolution
    targets = np.random.RandomState(0).randint(0, 256, (OOM_BATCH, res, res, 3)).astype(np.uint8)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        limit = torch.cuda.memory_allocated(device) + int(2.5 * per_face)
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
        plan = BatchPlan(total, per_face, most=OOM_BATCH)
    else:
        plan = BatchPlan(int(2.5 * per_face), per_face, most=OOM_BATCH)
    tried: List[int] = []

    def project(first: int, size: int) -> np.ndarray:
        tried.append(size)
        plan.check(size)
        try:
            return toonifier.project(targets[first: first + size], list(range(first, first + size)),
                                     ProjectorConfig(steps=2)).latents
        except Exception as exc:  # the engine's error becomes the plan's, as app.toonify does
            if toonifier.backend.is_out_of_memory(exc):
                raise BatchOutOfMemory(str(exc).splitlines()[0]) from exc
            raise

    try:
        latents = np.concatenate(plan.run(OOM_BATCH, OOM_BATCH, project))
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    return {"batches_tried": tried, "final_batch": plan.size(OOM_BATCH), "faces_projected": len(latents),
            "holds": len(latents) == OOM_BATCH and len(tried) > 1 and plan.size(OOM_BATCH) < OOM_BATCH}


def synthesis_rate(toonifier: Toonifier, device: torch.device, batches: Sequence[int]) -> List[Dict[str, object]]:
    rows = []
    for batch in batches:
        ws = w_plus(toonifier, list(range(batch)))
        toonifier.ffhq.synthesize(ws)  # warm-up (cuDNN picks its algorithms)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            toonifier.ffhq.synthesize(ws)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - started)
        rows.append(dict(batch=batch, images_per_s=batch / statistics.median(times)))
    return rows


def _per_face_bytes(toonifier: Toonifier, steps: List[Dict[str, object]]) -> int:
    """What one face measured at fp32 (batch 1), or the paper figure of stylegan2.memory on the CPU."""
    measured = [row["peak_gb_per_face"] for row in steps if row["batch"] == 1 and row["precision"] == "fp32"]
    if measured and measured[0]:
        return int(measured[0] * 1e9)
    return bytes_per_face(toonifier.ffhq_spec, toonifier.perceptual.tap_channels)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny models instead of config-f")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 2 4 8 (tiny: 1 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per (batch, precision)")
    parser.add_argument("--guard-steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batches = args.batches or ([1, 2] if args.tiny else [1, 2, 4, 8])
    check = Check(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        paths = models("tiny" if args.tiny else "config-f", Path(tmp))
        toonifier = Toonifier("torch", paths, device=str(device))
        facts = device_facts(device, toonifier)
        check.part("device", facts)
        precisions = [p for p in PRECISIONS if p in facts["precisions"]]
        check.part("fidelity", fidelity(toonifier, paths, device))
        check.part("steps", step_times(toonifier, device, batches, args.steps, precisions))
        check.part("guard", guard(toonifier, aligned_target(toonifier.resolution), args.guard_steps, precisions))
        check.part("oom_halving", oom_halving(toonifier, device, _per_face_bytes(toonifier, check.data["steps"])))
        check.part("synthesis", synthesis_rate(toonifier, device, batches))
    report("gpu-check-steps", check.data["steps"], ["batch", "precision", "step_s", "per_face_step_s",
                                                    "peak_gb_per_face"])
    failed = [name for name in ("fidelity", "oom_halving") if not check.data[name]["holds"]]
    print("gpu check %s in %.0f s: %s" % ("FAILED" if failed else "passed", check.data["elapsed_s"], check.path))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
