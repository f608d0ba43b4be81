"""Mapping and skip-architecture synthesis in PyTorch, built from a GeneratorSpec."""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from torch.profiler import record_function

from ..constants import LRELU_GAIN, PIXEL_NORM_EPS
from ..layout import GeneratorSpec, LayerSpec
from ..precision import FP32
from ..regions import REGION_BIAS_ACT, REGION_NOISE, layer_region
from ..timings import WEIGHT_CONVERSION, phase
from ..weights import SynthesisWeights, mapping_weights, synthesis_weights
from . import ops
from .precision import precision_scope


def torch_weights(spec: GeneratorSpec, device: torch.device,
                  variables: Mapping[str, np.ndarray] = None) -> SynthesisWeights[torch.Tensor]:
    """Runtime synthesis weights moved to ``device`` in PyTorch layouts (OIHW; flipped I,O,H,W for Conv0_up;
    [in, out] for ToRGB; biases [1, C, 1, 1], noise [1, 1, H, W]), convolution weights channels-last."""
    weights = synthesis_weights(spec, variables)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)

    layers = []
    for layer, lw in zip(spec.layers, weights.layers):
        converted = replace(lw, weight=_torch_weight(layer, lw.weight), bias=lw.bias[None, :, None, None]).map(tensor)
        if layer.kind != "rgb":
            converted.weight = converted.weight.contiguous(memory_format=torch.channels_last)
        layers.append(converted)
    return SynthesisWeights(tensor(weights.const), layers, [tensor(noise[:, None]) for noise in weights.noise])


def _torch_weight(layer: LayerSpec, weight: np.ndarray) -> np.ndarray:
    if layer.kind == "up":  # conv_transpose2d's [in, out, h, w], flipped (spec §3.6)
        return weight[::-1, ::-1].transpose(2, 3, 0, 1)
    if layer.kind == "rgb":
        return weight[0, 0]  # [in, out]: a matrix for ops.to_rgb
    return weight.transpose(3, 2, 0, 1)


def mapping_graph(z: torch.Tensor, layers: Sequence, spec: GeneratorSpec) -> torch.Tensor:
    """z [N, z_dim] → w [N, w_dim] (spec §3.3, without broadcast or truncation)."""
    x = z
    if spec.normalize_latents:
        x = x * torch.rsqrt(torch.mean(torch.square(x), dim=1, keepdim=True) + PIXEL_NORM_EPS)
    for weight, bias in layers:
        x = ops.lrelu_gain(torch.addmm(bias, x, weight))
    return x


def synthesis_graph(
    ws: torch.Tensor, noise: Sequence[torch.Tensor], weights: SynthesisWeights[torch.Tensor], spec: GeneratorSpec,
    firs: Mapping[int, torch.Tensor],
) -> torch.Tensor:
    """W+ [N, num_ws, w_dim] and per-map noise [N|1, 1, H, W] → images NCHW (spec §3.7).

    Activations are channels-last (oneDNN's native layout: no reorders around every convolution) and leave
    each layer without the activation's gain √2, which the next layer folds into its input modulation."""
    x = weights.const.expand(ws.shape[0], -1, -1, -1).contiguous(memory_format=torch.channels_last)
    gain = 1.0
    img: Optional[torch.Tensor] = None
    for layer, lw in zip(spec.layers, weights.layers):
        with record_function(layer_region(layer)):
            s = ops.styles(ws[:, layer.w_index], lw.style_weight, lw.style_bias)
            if layer.kind == "rgb":
                y = ops.to_rgb(x, s * gain, lw.weight, lw.bias)
                if spec.conv_clamp is not None:
                    y = y.clamp(-spec.conv_clamp, spec.conv_clamp)
                img = y if img is None else ops.upsample_skip(img, firs[spec.num_channels]) + y
            else:
                up_fir = firs[layer.out_channels] if layer.kind == "up" else None
                y = ops.modulated_conv(x, s * gain, lw.weight, up_fir)
                with record_function(REGION_NOISE):
                    y = ops.demodulate_add_noise(y, s, lw.demod, noise[layer.noise_index] * lw.noise_strength)
                with record_function(REGION_BIAS_ACT):
                    x = ops.bias_lrelu_(y, lw.bias)
                    if spec.conv_clamp is not None:  # x lacks the gain √2 that ADA clamps after
                        x = x.clamp_(-spec.conv_clamp / LRELU_GAIN, spec.conv_clamp / LRELU_GAIN)
                gain = LRELU_GAIN
    return img.contiguous()


class Generator:
    """A loaded generator on one device; NumPy in, NumPy out (same interface as the tf1 engine)."""

    def __init__(self, spec: GeneratorSpec, device: Optional[str] = None) -> None:
        """``device``: cpu, cuda, cuda:1; None = CUDA when available."""
        self.spec = spec
        self.device = ops.pick_device(device)
        with phase(WEIGHT_CONVERSION):
            self.synthesis = torch_weights(spec, self.device)
            self.mapping_params = [
                (torch.as_tensor(w, device=self.device), torch.as_tensor(b, device=self.device))
                for w, b in mapping_weights(spec)
            ]
        channel_counts = {layer.out_channels for layer in spec.layers} | {spec.num_channels}
        self.firs = {c: ops.fir(c, self.device) for c in channel_counts}

    def run_synthesis(self, ws: torch.Tensor, noise: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Tensor in, tensor out (differentiable; used by the projector)."""
        return synthesis_graph(ws, self.synthesis.noise if noise is None else noise, self.synthesis, self.spec,
                               self.firs)

    @torch.inference_mode()
    def map(self, z: np.ndarray) -> np.ndarray:
        z_t = torch.as_tensor(np.asarray(z, np.float32), device=self.device)
        return mapping_graph(z_t, self.mapping_params, self.spec).cpu().numpy()

    @torch.inference_mode()
    def synthesize(self, ws: np.ndarray, noise: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """Images NCHW float32. ``noise``: per-map [N, H, W] arrays; default the stored buffers."""
        ws_t = torch.as_tensor(np.asarray(ws, np.float32), device=self.device)
        noise_t = None
        if noise is not None:
            noise_t = [torch.as_tensor(np.asarray(n, np.float32)[:, None], device=self.device) for n in noise]
        with precision_scope(FP32, self.device):  # results are rendered in strict fp32 (no TF32 on Ampere+)
            return self.run_synthesis(ws_t, noise_t).cpu().numpy()

    def load_synthesis(self, variables: Mapping[str, np.ndarray]) -> None:
        """Swap in other synthesis variables of the same shapes (blends, interpolations)."""
        self.synthesis = torch_weights(self.spec, self.device, variables)
