"""Layout of ``vgg16_zhang_perceptual.pkl`` and the LPIPS v0.1 semantics both engines implement (spec §4.1).

The file's internal variable names are not documented publicly, so we map by **order and shape**:
13 VGG16 conv (kernel, bias) pairs in VGG order, then the 5 LPIPS per-tap linear weights. The whole
sequence is validated; anything else is an error that says where it differs.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from .errors import ModelStructureError
from .pickles import NetworkRecord

# VGG16 convs per block; LPIPS taps the last conv (after ReLU) of each block; 2×2 max-pool between blocks.
VGG_BLOCKS = (2, 2, 3, 3, 3)
VGG16_CHANNELS = (64, 128, 256, 512, 512)
TINY_CHANNELS = (8, 16, 16, 32, 32)


# ---- The one assumption about the real file we cannot check here: its input preprocessing. ----------
# Inputs arrive as NCHW RGB in [0, 255] (spec §4.1). LPIPS v0.1 scales them to [-1, 1], then applies its
# ScalingLayer: (x − shift) / scale per channel.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
INPUT_RANGE = 255.0
TAP_NORM_EPS = 1e-10  # channel-unit normalisation: x / (‖x‖_c + eps)


def input_affine() -> Tuple[np.ndarray, np.ndarray]:
    """(a, b) per channel with preprocessed = x·a + b, folding [0,255]→[−1,1] and the scaling layer."""
    shift = np.asarray(LPIPS_SHIFT, np.float64)
    scale = np.asarray(LPIPS_SCALE, np.float64)
    a = (2.0 / INPUT_RANGE) / scale
    b = (-1.0 - shift) / scale
    return a.astype(np.float32), b.astype(np.float32)
# -----------------------------------------------------------------------------------------------------


@dataclass
class PerceptualSpec:
    """Validated LPIPS-VGG16 weights: conv kernels HWIO with biases, per block; one linear weight per tap."""

    blocks: List[List[Tuple[np.ndarray, np.ndarray]]]
    linear: List[np.ndarray]  # [C] per tap

    @property
    def tap_channels(self) -> List[int]:
        return [block[-1][0].shape[-1] for block in self.blocks]


def _as_hwio(value: np.ndarray, in_channels: int, where: str) -> np.ndarray:
    if value.ndim == 4 and value.shape[:2] == (3, 3) and value.shape[2] == in_channels:
        return value
    if value.ndim == 4 and value.shape[2:] == (3, 3) and value.shape[1] == in_channels:
        return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
    raise ModelStructureError(
        "perceptual net: %s should be a 3×3 conv kernel with %d input channels, got shape %s"
        % (where, in_channels, tuple(value.shape))
    )


def _as_linear(value: np.ndarray, channels: int, where: str) -> np.ndarray:
    if value.size == channels and value.shape in ((channels,), (channels, 1), (1, 1, channels, 1)):
        return value.reshape(channels).astype(np.float32)
    raise ModelStructureError(
        "perceptual net: %s should be an LPIPS linear weight of %d channels ([C], [C,1] or [1,1,C,1]), got shape %s"
        % (where, channels, tuple(value.shape))
    )


def describe_perceptual(record: NetworkRecord) -> PerceptualSpec:
    """Map the variables, in order, onto 13 conv pairs + 5 linear weights, validating every shape."""
    items = list(record.variables.items())
    expected = 2 * sum(VGG_BLOCKS) + len(VGG_BLOCKS)
    if len(items) != expected:
        raise ModelStructureError(
            "perceptual net %r has %d variables; LPIPS-VGG16 needs %d (13 conv kernel+bias pairs, then 5 linear "
            "weights)" % (record.name, len(items), expected)
        )
    blocks: List[List[Tuple[np.ndarray, np.ndarray]]] = []
    cursor, in_channels = 0, 3
    for block_index, convs in enumerate(VGG_BLOCKS):
        block = []
        for conv_index in range(convs):
            (k_name, kernel), (b_name, bias) = items[cursor], items[cursor + 1]
            label = "conv%d_%d" % (block_index + 1, conv_index + 1)
            kernel = _as_hwio(kernel, in_channels, "%s kernel (variable #%d %r)" % (label, cursor, k_name))
            out_channels = kernel.shape[-1]
            if bias.shape != (out_channels,):
                raise ModelStructureError(
                    "perceptual net: %s bias (variable #%d %r) should have shape (%d,), got %s"
                    % (label, cursor + 1, b_name, out_channels, tuple(bias.shape))
                )
            block.append((kernel.astype(np.float32), bias.astype(np.float32)))
            in_channels = out_channels
            cursor += 2
        blocks.append(block)
    linear = []
    for tap, block in enumerate(blocks):
        name, value = items[cursor]
        where = "tap %d linear (variable #%d %r)" % (tap, cursor, name)
        linear.append(_as_linear(value, block[-1][0].shape[-1], where))
        cursor += 1
    return PerceptualSpec(blocks, linear)


def _carry_kernel(in_channels: int, out_channels: int, rnd: np.random.RandomState) -> np.ndarray:
    """3×3 kernel whose centre tap passes the first input channels through, plus small random mixing."""
    kernel = rnd.randn(3, 3, in_channels, out_channels) * (0.05 / np.sqrt(9 * in_channels))
    for channel in range(min(in_channels, out_channels)):
        kernel[1, 1, channel, channel] += 1.0
    return kernel


def random_perceptual(seed: int, channels: Sequence[int] = TINY_CHANNELS) -> NetworkRecord:
    """A VGG-shaped perceptual pickle record in the 13+5 layout for tests. Purely random VGG features,
    unit-normalised, ignore brightness and contrast, so a projector "matches" images that look nothing alike.
    This net is built to be a faithful small metric instead: conv1_1 splits each colour into ± ReLU channels
    plus a constant channel (so normalised taps still encode colour), and later convs carry those through."""
    rnd = np.random.RandomState(seed)
    variables: "OrderedDict[str, np.ndarray]" = OrderedDict()
    in_channels = 3
    for block_index, (convs, out_channels) in enumerate(zip(VGG_BLOCKS, channels)):
        for conv_index in range(convs):
            scope = "conv%d_%d" % (block_index + 1, conv_index + 1)
            bias = np.zeros(out_channels)
            if in_channels == 3:
                kernel = rnd.randn(3, 3, 3, out_channels) * 0.05
                for colour in range(3):
                    kernel[1, 1, colour, colour] += 1.0
                    kernel[1, 1, colour, colour + 3] -= 1.0
                bias[6] = 1.0  # the constant channel
            else:
                kernel = _carry_kernel(in_channels, out_channels, rnd)
            variables[scope + "/weight"] = kernel.astype(np.float32)
            variables[scope + "/bias"] = bias.astype(np.float32)
            in_channels = out_channels
    for tap, out_channels in enumerate(channels):
        variables["lin%d/weight" % tap] = np.abs(1.0 + 0.1 * rnd.randn(1, 1, out_channels, 1)).astype(np.float32)
    return NetworkRecord("vgg16_perceptual", {}, variables, build_func_name="lpips_vgg16", version=3,
                         build_module_src="# written by toonify's stylegan2.perceptual: carries no code\n")
