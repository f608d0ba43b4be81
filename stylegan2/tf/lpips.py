"""LPIPS-VGG16 distance in TF 1.15 (spec §4.1; semantics in stylegan2.perceptual)."""
from __future__ import annotations

from typing import List

import tensorflow as tf

from ..perceptual import TAP_NORM_EPS, PerceptualSpec, input_affine


class LPIPS:
    """Holds the VGG weights as constants; ``features`` and ``distance`` build graph pieces."""

    def __init__(self, spec: PerceptualSpec) -> None:
        scale, shift = input_affine()
        self._scale, self._shift = tf.constant(scale), tf.constant(shift)
        self._blocks = [[(tf.constant(k), tf.constant(b)) for k, b in block] for block in spec.blocks]
        self._linear = [tf.constant(w) for w in spec.linear]

    def features(self, images: tf.Tensor) -> List[tf.Tensor]:
        """NCHW images in [0, 255] → channel-unit-normalised taps, NHWC."""
        x = tf.transpose(images, [0, 2, 3, 1]) * self._scale + self._shift
        taps = []
        for index, block in enumerate(self._blocks):
            if index > 0:
                x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
            for kernel, bias in block:
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=[1, 1, 1, 1], padding="SAME") + bias)
            norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=3, keepdims=True))
            taps.append(x / (norm + TAP_NORM_EPS))
        return taps

    def distance_to(self, images: tf.Tensor, target_taps: List[tf.Tensor]) -> tf.Tensor:
        """One distance per sample: Σ_taps mean_HW( Σ_c w_c (f − f_t)² )."""
        total = 0.0
        for tap, target, weight in zip(self.features(images), target_taps, self._linear):
            weighted = tf.reduce_sum(tf.square(tap - target) * weight, axis=3)
            total += tf.reduce_mean(weighted, axis=[1, 2])
        return total

    def distance(self, images0: tf.Tensor, images1: tf.Tensor) -> tf.Tensor:
        return self.distance_to(images0, self.features(images1))
