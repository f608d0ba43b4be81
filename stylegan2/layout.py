"""Engine-neutral description of a StyleGAN2 generator, derived from a pickle's static kwargs (spec §2).

Both engines build from a :class:`GeneratorSpec`; neither re-derives shapes, channel counts or the
layer ↔ w-index ↔ noise-index map. Every variable of the pickle is shape-checked here and every one
must be consumed: a missing, extra or mis-shaped variable is an error that names it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import ModelStructureError
from .pickles import NetworkRecord

# Function defaults of G_main / G_mapping / G_synthesis_stylegan2 (spec §2.1).
DEFAULTS: Dict[str, Any] = {
    "latent_size": 512,
    "label_size": 0,
    "dlatent_size": 512,
    "mapping_layers": 8,
    "mapping_fmaps": 512,
    "mapping_lrmul": 0.01,
    "mapping_nonlinearity": "lrelu",
    "normalize_latents": True,
    "num_channels": 3,
    "resolution": 1024,
    "fmap_base": 16 << 10,
    "fmap_decay": 1.0,
    "fmap_min": 1,
    "fmap_max": 512,
    "architecture": "skip",
    "nonlinearity": "lrelu",
    "resample_kernel": [1, 3, 3, 1],
    "truncation_psi": 0.5,
    "truncation_cutoff": None,
    "dlatent_broadcast": None,
    "conv_clamp": None,  # StyleGAN2-ADA: activations clamped to ±conv_clamp (None: never)
}
# Keys that only steer training or TF graph building and do not change inference maths.
IGNORED_KWARGS = frozenset(
    {"truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta", "style_mixing_prob", "fused_modconv",
     "randomize_noise", "dtype", "is_template_graph", "structure", "mapping_func", "synthesis_func",
     "use_noise", "num_fp16_res", "resolution_h", "resolution_w"}
)
REQUIRED_VALUES = {
    "label_size": 0,
    "architecture": "skip",
    "nonlinearity": "lrelu",
    "mapping_nonlinearity": "lrelu",
    "resample_kernel": [1, 3, 3, 1],
    "use_noise": True,
    "num_fp16_res": 0,
}


@dataclass(frozen=True)
class LayerSpec:
    """One modulated layer of the synthesis network."""

    scope: str  # e.g. "8x8/Conv0_up"
    kind: str  # "conv", "up" (Conv0_up) or "rgb" (ToRGB)
    resolution: int  # output resolution
    in_channels: int
    out_channels: int
    w_index: int
    noise_index: Optional[int]

    @property
    def kernel(self) -> int:
        return 1 if self.kind == "rgb" else 3


@dataclass
class GeneratorSpec:
    """Everything an engine needs to build mapping + synthesis, with validated raw variables."""

    resolution: int
    num_channels: int
    num_ws: int
    z_dim: int
    w_dim: int
    mapping_layers: int
    mapping_lrmul: float
    normalize_latents: bool
    truncation_psi: Optional[float]
    truncation_cutoff: Optional[int]
    layers: List[LayerSpec]
    noise_resolutions: List[int]
    mapping_vars: "OrderedDict[str, np.ndarray]"
    synthesis_vars: "OrderedDict[str, np.ndarray]"
    dlatent_avg: np.ndarray
    conv_clamp: Optional[float] = None  # ADA: conv outputs (after the √2 gain) and ToRGB outputs within ±this

    @property
    def noise_names(self) -> List[str]:
        return ["noise%d" % i for i in range(len(self.noise_resolutions))]


def _kwargs(record: NetworkRecord) -> Dict[str, Any]:
    """Defaults overlaid with each network's static kwargs; every network is checked on its own."""
    merged = dict(DEFAULTS)
    for net in [record] + list(record.components.values()):
        for key, value in net.static_kwargs.items():
            if key not in DEFAULTS and key not in IGNORED_KWARGS:
                raise ModelStructureError("unsupported generator setting %r=%r in network %r" % (key, value, net.name))
            required = REQUIRED_VALUES.get(key, value)
            if (list(value) if isinstance(value, (list, tuple)) else value) != required:
                raise ModelStructureError(
                    "unsupported generator in network %r: %s=%r (only %r is implemented)"
                    % (net.name, key, value, required)
                )
            merged[key] = value
    return merged


def channels(stage: int, kw: Dict[str, Any]) -> int:
    """nf(stage) of spec §2.2."""
    value = int(kw["fmap_base"] / (2.0 ** (stage * kw["fmap_decay"])))
    return int(np.clip(value, kw["fmap_min"], kw["fmap_max"]))


def synthesis_layers(resolution: int, kw: Dict[str, Any]) -> List[LayerSpec]:
    """The layer list with its w and noise indices (spec §2.4)."""
    log2 = int(round(math.log2(resolution)))
    if 2 ** log2 != resolution or resolution < 4:
        raise ModelStructureError("resolution %r is not a power of two >= 4" % resolution)
    c4 = channels(1, kw)
    layers = [
        LayerSpec("4x4/Conv", "conv", 4, c4, c4, 0, 0),
        LayerSpec("4x4/ToRGB", "rgb", 4, c4, kw["num_channels"], 1, None),
    ]
    for r in range(3, log2 + 1):
        res, cin, cout = 2 ** r, channels(r - 2, kw), channels(r - 1, kw)
        layers += [
            LayerSpec("%dx%d/Conv0_up" % (res, res), "up", res, cin, cout, 2 * r - 5, 2 * r - 5),
            LayerSpec("%dx%d/Conv1" % (res, res), "conv", res, cout, cout, 2 * r - 4, 2 * r - 4),
            LayerSpec("%dx%d/ToRGB" % (res, res), "rgb", res, cout, kw["num_channels"], 2 * r - 3, None),
        ]
    return layers


def expected_synthesis_shapes(layers: List[LayerSpec], w_dim: int) -> "OrderedDict[str, Tuple[int, ...]]":
    """Variable name → shape, in the original creation order (spec §2.3)."""
    noise_res = sorted({(layer.noise_index, layer.resolution) for layer in layers if layer.noise_index is not None})
    shapes: "OrderedDict[str, Tuple[int, ...]]" = OrderedDict()
    for index, res in noise_res:
        shapes["noise%d" % index] = (1, 1, res, res)
    shapes["4x4/Const/const"] = (1, layers[0].in_channels, 4, 4)
    for layer in layers:
        k = layer.kernel
        shapes[layer.scope + "/weight"] = (k, k, layer.in_channels, layer.out_channels)
        shapes[layer.scope + "/mod_weight"] = (w_dim, layer.in_channels)
        shapes[layer.scope + "/mod_bias"] = (layer.in_channels,)
        if layer.noise_index is not None:
            shapes[layer.scope + "/noise_strength"] = ()
        shapes[layer.scope + "/bias"] = (layer.out_channels,)
    return shapes


def expected_mapping_shapes(kw: Dict[str, Any]) -> "OrderedDict[str, Tuple[int, ...]]":
    shapes: "OrderedDict[str, Tuple[int, ...]]" = OrderedDict()
    fan_in = kw["latent_size"]
    for i in range(kw["mapping_layers"]):
        fan_out = kw["dlatent_size"] if i == kw["mapping_layers"] - 1 else kw["mapping_fmaps"]
        shapes["Dense%d/weight" % i] = (fan_in, fan_out)
        shapes["Dense%d/bias" % i] = (fan_out,)
        fan_in = fan_out
    return shapes


def checked_variables(
    network: NetworkRecord, expected: "OrderedDict[str, Tuple[int, ...]]"
) -> "OrderedDict[str, np.ndarray]":
    """Return the network's variables in expected order; every one present, none extra, shapes equal."""
    have = network.variables
    missing = [name for name in expected if name not in have]
    extra = [name for name in have if name not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing %s" % ", ".join(missing[:5]))
        if extra:
            parts.append("unexpected %s" % ", ".join(extra[:5]))
        raise ModelStructureError("network %r does not match its settings: %s" % (network.name, "; ".join(parts)))
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, shape in expected.items():
        value = have[name]
        if tuple(value.shape) != tuple(shape):
            raise ModelStructureError(
                "variable %s/%s has shape %s, expected %s" % (network.name, name, tuple(value.shape), tuple(shape))
            )
        out[name] = value
    return out


def describe(gs: NetworkRecord) -> GeneratorSpec:
    """Validate a Gs record and describe the generator it holds."""
    kw = _kwargs(gs)
    synthesis, mapping = gs.component("synthesis"), gs.component("mapping")
    resolution = int(kw["resolution"])
    layers = synthesis_layers(resolution, kw)
    num_ws = 2 * int(round(math.log2(resolution))) - 2
    broadcast = mapping.static_kwargs.get("dlatent_broadcast", num_ws)
    if broadcast not in (None, num_ws):
        raise ModelStructureError("mapping broadcasts to %r ws but synthesis needs %d" % (broadcast, num_ws))
    gs_vars = checked_variables(gs, OrderedDict([("lod", ()), ("dlatent_avg", (kw["dlatent_size"],))]))
    noise_count = max(layer.noise_index for layer in layers if layer.noise_index is not None) + 1
    return GeneratorSpec(
        resolution=resolution,
        num_channels=int(kw["num_channels"]),
        num_ws=num_ws,
        z_dim=int(kw["latent_size"]),
        w_dim=int(kw["dlatent_size"]),
        mapping_layers=int(kw["mapping_layers"]),
        mapping_lrmul=float(kw["mapping_lrmul"]),
        normalize_latents=bool(kw["normalize_latents"]),
        truncation_psi=kw["truncation_psi"],
        truncation_cutoff=kw["truncation_cutoff"],
        layers=layers,
        noise_resolutions=[2 ** ((i + 5) // 2) for i in range(noise_count)],
        mapping_vars=checked_variables(mapping, expected_mapping_shapes(kw)),
        synthesis_vars=checked_variables(synthesis, expected_synthesis_shapes(layers, int(kw["dlatent_size"]))),
        dlatent_avg=gs_vars["dlatent_avg"],
        conv_clamp=None if kw["conv_clamp"] is None else float(kw["conv_clamp"]),
    )
