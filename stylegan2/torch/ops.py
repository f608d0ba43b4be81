"""PyTorch building blocks in NCHW (spec §3); the same functions as stylegan2.tf.ops."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from ..constants import DEMOD_EPS, LRELU_GAIN, LRELU_SLOPE
from ..filters import AFTER_TRANSPOSED_CONV_PAD, SKIP_UPSAMPLE_PAD, UP, fir_kernel
from ..regions import REGION_FIR


def pick_device(name: Optional[str] = None) -> torch.device:
    """The named device (cpu, cuda, cuda:1); None or "" = CUDA when available, else the CPU."""
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def lrelu_gain(x: torch.Tensor) -> torch.Tensor:
    """√2·lrelu₀.₂ (spec §3.2)."""
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


def fir(channels: int, device: torch.device) -> torch.Tensor:
    """Depthwise FIR weight [C, 1, 4, 4] (×up²)."""
    kernel = torch.as_tensor(fir_kernel(gain=UP * UP)[::-1, ::-1].copy(), device=device)
    return kernel[None, None].repeat(channels, 1, 1, 1)


def upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: Tuple[int, int]) -> torch.Tensor:
    """upfirdn2d (spec §3.8) per channel: zero-insert ×up, pad, FIR (valid)."""
    with record_function(REGION_FIR):
        n, c, h, w = x.shape
        if up > 1:
            x = x.reshape(n, c, h, 1, w, 1)
            x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
            x = x.reshape(n, c, h * up, w * up)
        x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
        return F.conv2d(x, kernel, groups=c)


def upsample_skip(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """upsample_2d of the RGB skip path: ×2 with pad (2, 1)."""
    return upfirdn(img, kernel, UP, SKIP_UPSAMPLE_PAD)


def styles(w: torch.Tensor, style_weight: torch.Tensor, style_bias: torch.Tensor) -> torch.Tensor:
    """s = w·A' + (a + 1) (spec §3.4); [N, C_in]."""
    return torch.addmm(style_bias, w, style_weight)


def modulated_conv(
    x: torch.Tensor, s: torch.Tensor, weight: torch.Tensor, up_fir: Optional[torch.Tensor]
) -> torch.Tensor:
    """Non-fused modulated conv, before demodulation: scale inputs by s, convolve with the shared weight.
    Mathematically the per-sample weight of spec §3.4; the caller applies d (``demodulate_add_noise``).

    ``weight`` is OIHW for plain convs and, when ``up_fir`` is given, [in, out, kh, kw] already flipped for
    conv_transpose2d (spec §3.6: transposed conv with the flipped weight, then FIR pad (1, 1)).
    """
    x = x * s[:, :, None, None]
    if up_fir is not None:
        x = F.conv_transpose2d(x, weight, stride=2)
        return upfirdn(x, up_fir, 1, AFTER_TRANSPOSED_CONV_PAD)
    return F.conv2d(x, weight, padding=weight.shape[-1] // 2)


def to_rgb(x: torch.Tensor, s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """ToRGB (spec §3.5): the 1×1 modulated conv as one matmul per sample, styles folded into the [in, out]
    weight. On channels-last activations the pixels are rows of a matrix, so this reads x once (no x·s pass)
    and runs as a GEMM instead of a 3-output-channel convolution."""
    n, c, h, w = x.shape
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    rgb = torch.baddbmm(bias.reshape(1, 1, -1), pixels, s[:, :, None] * weight[None])
    return rgb.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def demodulate_add_noise(y: torch.Tensor, s: torch.Tensor, demod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """y·d + noise in one pass, d = 1/√(s²·Σ W'² + ε) per sample and output channel (spec §3.4)."""
    d = torch.rsqrt(torch.square(s) @ demod + DEMOD_EPS)
    return torch.addcmul(noise, y, d[:, :, None, None])


def bias_lrelu_(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """lrelu₀.₂(y + b) in place, *without* the gain √2: the next layer multiplies it into its styles."""
    return F.leaky_relu_(y.add_(bias), LRELU_SLOPE)


def box_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over factor×factor blocks (the projector's 1024 → 256 step, spec §4)."""
    return x if factor == 1 else F.avg_pool2d(x, factor)
