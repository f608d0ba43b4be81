"""Arithmetic precision of the projection's forward and backward passes (issue #28): the names, and which one
``auto`` means on which device. The latents, Adam state and noise maps always stay fp32, and the final synthesis
of a result is always fp32; only the step's synthesis and VGG run at the chosen precision."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

FP32, TF32, BF16, FP16, AUTO = "fp32", "tf32", "bf16", "fp16", "auto"
PRECISIONS = (FP32, TF32, BF16, FP16)  # what a projector runs at
CHOICES = PRECISIONS + (AUTO,)  # what a user may ask for

# The modes whose quality guard (bench/precision.py: final perceptual distance within 3 % of fp32) has held;
# ``auto`` picks only these. fp16 has not been measured on a Turing card yet, so Turing gets fp32.
GUARDED = (FP32, TF32, BF16)
AMPERE = (8, 0)  # first compute capability with bf16 and TF32 tensor cores


@dataclass(frozen=True)
class DeviceTraits:
    """What decides the precision: the device kind, the CUDA compute capability, the CPU's bf16 support."""

    kind: str  # "cpu" or "cuda"
    capability: Optional[Tuple[int, int]] = None
    cpu_bf16: bool = False


class PrecisionUnavailable(ValueError):
    """The precision asked for cannot run on this engine and device."""


def supported(engine: str, traits: DeviceTraits) -> Tuple[str, ...]:
    """The precisions ``engine`` can run on the device. torch autocasts to bf16 (Ampere+ or a CPU with bf16
    instructions) or fp16 (any CUDA GPU; on a CPU fp16 runs too, slowly: for the quality guard), and TF32 is
    Ampere+. tf1 runs fp32 only: TensorFlow 1.15's mixed-precision rewrite is fp16 on CUDA GPUs and must be on
    when the generator's session is made, which this engine does not do yet."""
    cuda = traits.kind == "cuda"
    ampere = cuda and traits.capability is not None and traits.capability >= AMPERE
    if engine == "tf1":
        return (FP32,)
    modes = [FP32, FP16]
    if ampere:
        modes.append(TF32)
    if ampere or (not cuda and traits.cpu_bf16):
        modes.append(BF16)
    return tuple(mode for mode in PRECISIONS if mode in modes)


def resolve(requested: str, engine: str, traits: DeviceTraits) -> str:
    """The precision to run: ``auto`` is the fastest guarded mode the device has (bf16 on Ampere+ and on bf16
    CPUs, fp32 elsewhere); a named mode is checked, and refused with what the device offers instead."""
    if requested not in CHOICES:
        raise PrecisionUnavailable("precision must be one of %s; got %r" % (", ".join(CHOICES), requested))
    offered = supported(engine, traits)
    if requested == AUTO:
        for mode in (BF16, TF32):
            if mode in offered and mode in GUARDED:
                return mode
        return FP32
    if requested not in offered:
        where = "a CUDA GPU" if traits.kind == "cuda" else "this CPU"
        raise PrecisionUnavailable("precision %s does not apply to the %s engine on %s; it offers %s"
                                   % (requested, engine, where, ", ".join(offered)))
    return requested


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX), from Linux's flag list."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
