"""Runtime weights: equalized-learning-rate scaling applied once, in NumPy (spec §3.1, §3.4, §3.5).

Stored parameters are multiplied by gain/√fan_in·lrmul at run time in the original; doing it here once
keeps both engines' graphs small and guarantees they use bit-identical float32 weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Generic, List, Mapping, Optional, Tuple, TypeVar

import numpy as np

from .layout import GeneratorSpec, LayerSpec


def _scaled(value: np.ndarray, coef: float) -> np.ndarray:
    # float32 × float32(coef), the rounding TF applies to a Python-float runtime coefficient.
    return (value.astype(np.float32) * np.float32(coef)).astype(np.float32)


A = TypeVar("A")  # what holds one array: np.ndarray here, a tensor or variable inside an engine
B = TypeVar("B")


@dataclass
class LayerWeights(Generic[A]):
    """One modulated layer: conv weight HWIO, style affine, bias and noise strength. Engines rearrange the
    arrays into their own layouts and ``map`` them into tensors, keeping these fields as their graph's inputs."""

    weight: A  # [k, k, in, out], already × 1/√(k²·in)
    style_weight: A  # [w_dim, in], already × 1/√w_dim
    style_bias: A  # [in], mod_bias + 1
    bias: A  # [out]
    noise_strength: A  # [] (0-d)
    demod: Optional[A]  # [in, out] Σ_taps W'², so that d² = s²·demod (spec §3.4); None for ToRGB

    def values(self) -> List[A]:
        """The arrays in field order (demod left out where there is none)."""
        return [value for value in (getattr(self, f.name) for f in fields(self)) if value is not None]

    def map(self, convert: Callable[[A], B]) -> "LayerWeights[B]":
        """The same layer with every array converted, in ``values`` order."""
        return LayerWeights(*(None if value is None else convert(value)
                              for value in (getattr(self, f.name) for f in fields(self))))


@dataclass
class SynthesisWeights(Generic[A]):
    const: A  # [1, C, 4, 4] as stored (NCHW)
    layers: List[LayerWeights[A]]
    noise: List[A]  # stored buffers, [1, H, W] each

    def values(self) -> List[A]:
        """Every array, in the order ``map`` converts them."""
        return [self.const] + [value for layer in self.layers for value in layer.values()] + list(self.noise)

    def map(self, convert: Callable[[A], B]) -> "SynthesisWeights[B]":
        return SynthesisWeights(convert(self.const), [layer.map(convert) for layer in self.layers],
                                [convert(noise) for noise in self.noise])


def mapping_weights(spec: GeneratorSpec) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(W [in,out], b [out]) per dense layer, scaled by lrmul/√in (spec §3.3)."""
    out = []
    for i in range(spec.mapping_layers):
        weight = spec.mapping_vars["Dense%d/weight" % i]
        bias = spec.mapping_vars["Dense%d/bias" % i]
        coef = 1.0 / math.sqrt(weight.shape[0]) * spec.mapping_lrmul
        out.append((_scaled(weight, coef), _scaled(bias, spec.mapping_lrmul)))
    return out


def _layer_weights(layer: LayerSpec, variables: Mapping[str, np.ndarray]) -> LayerWeights[np.ndarray]:
    prefix = layer.scope + "/"
    weight = variables[prefix + "weight"]
    mod_weight = variables[prefix + "mod_weight"]
    fan_in = layer.kernel * layer.kernel * layer.in_channels
    strength = variables.get(prefix + "noise_strength")
    scaled = _scaled(weight, 1.0 / math.sqrt(fan_in))
    return LayerWeights(
        weight=scaled,
        style_weight=_scaled(mod_weight, 1.0 / math.sqrt(mod_weight.shape[0])),
        style_bias=(variables[prefix + "mod_bias"] + np.float32(1)).astype(np.float32),
        bias=variables[prefix + "bias"].astype(np.float32),
        noise_strength=np.asarray(0.0 if strength is None else strength, np.float32),
        demod=None if layer.kind == "rgb" else np.square(scaled).sum(axis=(0, 1)).astype(np.float32),
    )


def synthesis_weights(spec: GeneratorSpec,
                      variables: Mapping[str, np.ndarray] = None) -> SynthesisWeights[np.ndarray]:
    """Runtime synthesis weights from ``variables`` (default: the spec's own, e.g. interpolated ones)."""
    variables = spec.synthesis_vars if variables is None else variables
    return SynthesisWeights(
        const=variables["4x4/Const/const"].astype(np.float32),
        layers=[_layer_weights(layer, variables) for layer in spec.layers],
        noise=[variables[name][0] for name in spec.noise_names],
    )

