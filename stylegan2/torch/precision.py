"""The torch engine's precisions (stylegan2.precision): autocast to bf16/fp16, TF32 on Ampere+, loss scaling for
fp16. Everything is scoped to a ``with`` block, so no process-wide flag outlives the step that set it."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Optional

import torch

from ..precision import BF16, FP16, TF32, DeviceTraits, cpu_has_bf16

if TYPE_CHECKING:
    from .networks import Generator

AUTOCAST_DTYPES = {BF16: torch.bfloat16, FP16: torch.float16}


def device_traits(generator: "Generator") -> DeviceTraits:
    device = generator.device
    if device.type == "cuda":
        return DeviceTraits("cuda", capability=torch.cuda.get_device_capability(device))
    return DeviceTraits("cpu", cpu_bf16=cpu_has_bf16())


@contextlib.contextmanager
def _tf32(device: torch.device, allowed: bool) -> Iterator[None]:
    """TF32 in cuDNN convolutions and cuBLAS matmuls on or off for the block (cuDNN's default is on, which would
    make "fp32" TF32 on Ampere); nothing on a CPU."""
    if device.type != "cuda":
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = allowed
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                         allow_tf32=allowed):
            yield
    finally:
        matmul.allow_tf32 = before


@contextlib.contextmanager
def precision_scope(precision: str, device: torch.device) -> Iterator[None]:
    """Run the block at ``precision``: convolutions and matmuls autocast to bf16/fp16 (parameters stay fp32), TF32
    for the fp32 remainder of a tf32 or bf16 step on CUDA, strict fp32 otherwise."""
    dtype: Optional[torch.dtype] = AUTOCAST_DTYPES.get(precision)
    with _tf32(device, precision in (TF32, BF16)), \
            torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        yield


def loss_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Dynamic loss scaling for fp16 (gradients of a perceptual distance underflow fp16); a no-op otherwise. It
    starts low: every overflow skips a step, and the early steps of the schedule matter most (from the default
    2^16, two skipped steps cost the tiny guard 6 % of distance)."""
    return torch.amp.GradScaler(device.type, init_scale=2.0 ** 10, enabled=precision == FP16)
