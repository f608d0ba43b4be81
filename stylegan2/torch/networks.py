"""Mapping and skip-architecture synthesis in PyTorch, built from a GeneratorSpec."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.profiler import record_function

from ..constants import LRELU_GAIN, PIXEL_NORM_EPS
from ..layout import GeneratorSpec
from ..projection import REGION_BIAS_ACT, REGION_NOISE, layer_region
from ..weights import mapping_weights, synthesis_weights
from . import ops


def torch_layout(
    spec: GeneratorSpec, device: torch.device, variables: Mapping[str, np.ndarray] = None
) -> Dict[str, torch.Tensor]:
    """Runtime synthesis weights moved to ``device`` in PyTorch layouts (OIHW; flipped I,O,H,W for Conv0_up;
    [in, out] for ToRGB), convolution weights channels-last."""
    weights = synthesis_weights(spec, variables)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)

    def conv_weight(array: np.ndarray) -> torch.Tensor:
        return tensor(array).contiguous(memory_format=torch.channels_last)

    params = {"const": tensor(weights.const)}
    for index, (layer, lw) in enumerate(zip(spec.layers, weights.layers)):
        key = "L%d/" % index
        if layer.kind == "up":
            params[key + "weight"] = conv_weight(lw.weight[::-1, ::-1].transpose(2, 3, 0, 1))
        elif layer.kind == "rgb":
            params[key + "weight"] = tensor(lw.weight[0, 0])  # [in, out]: a matrix for ops.to_rgb
        else:
            params[key + "weight"] = conv_weight(lw.weight.transpose(3, 2, 0, 1))
        params[key + "style_weight"] = tensor(lw.style_weight)
        params[key + "style_bias"] = tensor(lw.style_bias)
        params[key + "bias"] = tensor(lw.bias)[None, :, None, None]
        params[key + "noise_strength"] = tensor(np.float32(lw.noise_strength))
        if lw.demod is not None:
            params[key + "demod"] = tensor(lw.demod)
    for index, noise in enumerate(weights.noise):
        params["noise%d" % index] = tensor(noise[:, None])  # [1, 1, H, W]
    return params


def mapping_graph(z: torch.Tensor, layers: Sequence, spec: GeneratorSpec) -> torch.Tensor:
    """z [N, z_dim] → w [N, w_dim] (spec §3.3, without broadcast or truncation)."""
    x = z
    if spec.normalize_latents:
        x = x * torch.rsqrt(torch.mean(torch.square(x), dim=1, keepdim=True) + PIXEL_NORM_EPS)
    for weight, bias in layers:
        x = ops.lrelu_gain(torch.addmm(bias, x, weight))
    return x


def synthesis_graph(
    ws: torch.Tensor, noise: Sequence[torch.Tensor], params: Mapping[str, torch.Tensor], spec: GeneratorSpec,
    firs: Mapping[int, torch.Tensor],
) -> torch.Tensor:
    """W+ [N, num_ws, w_dim] and per-map noise [N|1, 1, H, W] → images NCHW (spec §3.7).

    Activations are channels-last (oneDNN's native layout: no reorders around every convolution) and leave
    each layer without the activation's gain √2, which the next layer folds into its input modulation."""
    x = params["const"].expand(ws.shape[0], -1, -1, -1).contiguous(memory_format=torch.channels_last)
    gain = 1.0
    img: Optional[torch.Tensor] = None
    for index, layer in enumerate(spec.layers):
        with record_function(layer_region(layer)):
            key = "L%d/" % index
            s = ops.styles(ws[:, layer.w_index], params[key + "style_weight"], params[key + "style_bias"])
            if layer.kind == "rgb":
                y = ops.to_rgb(x, s * gain, params[key + "weight"], params[key + "bias"])
                img = y if img is None else ops.upsample_skip(img, firs[spec.num_channels]) + y
            else:
                up_fir = firs[layer.out_channels] if layer.kind == "up" else None
                y = ops.modulated_conv(x, s * gain, params[key + "weight"], up_fir)
                with record_function(REGION_NOISE):
                    y = ops.demodulate_add_noise(y, s, params[key + "demod"],
                                                 noise[layer.noise_index] * params[key + "noise_strength"])
                with record_function(REGION_BIAS_ACT):
                    x = ops.bias_lrelu_(y, params[key + "bias"])
                gain = LRELU_GAIN
    return img.contiguous()


class Generator:
    """A loaded generator on one device; NumPy in, NumPy out (same interface as the tf1 engine)."""

    def __init__(self, spec: GeneratorSpec, device: Optional[str] = None) -> None:
        """``device``: cpu, cuda, cuda:1; None = CUDA when available."""
        self.spec = spec
        self.device = ops.pick_device(device)
        self.params = torch_layout(spec, self.device)
        self.mapping_params = [
            (torch.as_tensor(w, device=self.device), torch.as_tensor(b, device=self.device))
            for w, b in mapping_weights(spec)
        ]
        channel_counts = {layer.out_channels for layer in spec.layers} | {spec.num_channels}
        self.firs = {c: ops.fir(c, self.device) for c in channel_counts}

    @property
    def stored_noise(self) -> List[torch.Tensor]:
        return [self.params["noise%d" % i] for i in range(len(self.spec.noise_resolutions))]

    def run_synthesis(self, ws: torch.Tensor, noise: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Tensor in, tensor out (differentiable; used by the projector)."""
        return synthesis_graph(ws, self.stored_noise if noise is None else noise, self.params, self.spec, self.firs)

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
        return self.run_synthesis(ws_t, noise_t).cpu().numpy()

    def load_synthesis(self, variables: Mapping[str, np.ndarray]) -> None:
        """Swap in other synthesis variables of the same shapes (blends, interpolations)."""
        self.params = torch_layout(self.spec, self.device, variables)
