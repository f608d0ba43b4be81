"""Memory of one projection step, on paper: what a batch of faces costs on the device beyond the weights.

Counted per face, in float32 elements, from the layer list (spec §2.4) and the perceptual net's layout: the
activations autograd keeps for the backward pass, as our non-fused modulated convolution produces them
(modulated input, convolution output, noise + bias, leaky ReLU; an up-sampling layer also keeps its
transposed-convolution output before the FIR blur), the ToRGB skip path, and VGG16 on the 256² input (conv
output and ReLU per conv, pooled maps). Gradients of the same tensors exist transiently, one layer at a time,
so ``BACKWARD_FACTOR`` adds the largest of them. bench/memory.py measures the real figure beside this one."""
from __future__ import annotations

from typing import Sequence

from .layout import GeneratorSpec
from .perceptual import VGG_BLOCKS
from .projection import PERCEPTUAL_SIZE

FLOAT_BYTES = 4
KEPT_PER_CONV = 3  # convolution output, + noise and bias, leaky ReLU (the modulated input is counted apart)
KEPT_PER_UP = 2  # an up layer also keeps its transposed-convolution output and the blurred map
BACKWARD_FACTOR = 2.0  # the largest layer's gradients, live while the backward pass crosses it


def synthesis_elements(spec: GeneratorSpec) -> int:
    """Activations kept by one face's synthesis forward pass."""
    total = 0
    for layer in spec.layers:
        pixels = layer.resolution ** 2
        in_pixels = pixels // 4 if layer.kind == "up" else pixels
        total += layer.in_channels * in_pixels  # the modulated input
        if layer.kind == "rgb":
            total += 2 * layer.out_channels * pixels  # ToRGB output and the up-sampled skip image
        else:
            total += (KEPT_PER_CONV + (KEPT_PER_UP if layer.kind == "up" else 0)) * layer.out_channels * pixels
    return total


def perceptual_elements(channels: Sequence[int], resolution: int) -> int:
    """Activations of VGG16 on the down-sampled image of one face."""
    side = min(resolution, PERCEPTUAL_SIZE)
    total = 3 * resolution ** 2 + 3 * side ** 2  # the image, and its box-down-sampled copy
    for block, (convs, width) in enumerate(zip(VGG_BLOCKS, channels)):
        pixels = (side // 2 ** block) ** 2
        total += convs * 2 * width * pixels + width * pixels // 4
    return total


def bytes_per_face(spec: GeneratorSpec, perceptual_channels: Sequence[int]) -> int:
    """Device bytes one more face in a projection batch needs, on paper."""
    largest = max(layer.out_channels * layer.resolution ** 2 for layer in spec.layers)
    elements = synthesis_elements(spec) + perceptual_elements(perceptual_channels, spec.resolution)
    return int(FLOAT_BYTES * (elements + BACKWARD_FACTOR * largest * KEPT_PER_CONV))


def batch_that_fits(free_bytes: int, per_face_bytes: int, most: int) -> int:
    """The largest batch (1 … most) whose activations fit in ``free_bytes``; at least 1."""
    return max(1, min(most, free_bytes // max(1, per_face_bytes)))
