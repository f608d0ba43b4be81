"""TF 1.15 building blocks in NHWC, the layout TF's CPU kernels accept (spec §3)."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import tensorflow as tf

from ..constants import DEMOD_EPS, LRELU_GAIN, LRELU_SLOPE
from ..filters import AFTER_TRANSPOSED_CONV_PAD, RESAMPLE_TAPS, SKIP_UPSAMPLE_PAD, UP
from ..regions import REGION_FIR


def lrelu_gain(x: tf.Tensor) -> tf.Tensor:
    """fused_bias_act's 'lrelu' after the bias: √2·lrelu₀.₂ (spec §3.2)."""
    return tf.nn.leaky_relu(x, alpha=LRELU_SLOPE) * LRELU_GAIN


def upfirdn(x: tf.Tensor, up: int, pad: Tuple[int, int]) -> tf.Tensor:
    """upfirdn2d (spec §3.8) with the 4-tap FIR ×up²… applied per channel of an NHWC tensor."""
    with tf.name_scope(REGION_FIR):
        _, height, width, channels = x.shape.as_list()
        if up > 1:
            x = tf.reshape(x, [-1, height, 1, width, 1, channels])
            x = tf.pad(x, [[0, 0], [0, 0], [0, up - 1], [0, 0], [0, up - 1], [0, 0]])
            x = tf.reshape(x, [-1, height * up, width * up, channels])
        x = tf.pad(x, [[0, 0], list(pad), list(pad), [0, 0]])
        # the 2-D FIR is the outer product of one 1-D filter with itself: two 4-tap passes, not one of 16
        taps = fir_taps(UP)[::-1]  # true convolution; the taps are symmetric anyway
        for shape in ([len(taps), 1], [1, len(taps)]):
            kernel = np.tile(taps.reshape(shape + [1, 1]), [1, 1, channels, 1])
            x = tf.nn.depthwise_conv2d(x, tf.constant(kernel), strides=[1, 1, 1, 1], padding="VALID")
        return x


def fir_taps(up: int) -> np.ndarray:
    """1-D taps whose outer product with themselves is filters.fir_kernel(gain=up²)."""
    taps = np.asarray(RESAMPLE_TAPS, np.float64)
    return (taps / taps.sum() * up).astype(np.float32)


def upsample_skip(img: tf.Tensor) -> tf.Tensor:
    """upsample_2d of the RGB skip path: ×2 with pad (2, 1)."""
    return upfirdn(img, UP, SKIP_UPSAMPLE_PAD)


def styles(w: tf.Tensor, style_weight: tf.Tensor, style_bias: tf.Tensor) -> tf.Tensor:
    """s = w·A' + (a + 1) (spec §3.4); [N, C_in]."""
    return tf.matmul(w, style_weight) + style_bias


def modulated_conv(x: tf.Tensor, s: tf.Tensor, weight: tf.Tensor, up: bool) -> tf.Tensor:
    """Non-fused modulated conv, before demodulation: scale inputs by s, convolve with the shared weight.
    Mathematically the per-sample weight of spec §3.4; the caller applies d (``demodulate_add_noise``).

    ``weight`` is HWIO for plain convs and, for ``up``, already flipped to conv2d_transpose's
    [h, w, out, in] layout (spec §3.6: transposed conv with the flipped weight, then FIR pad (1, 1)).
    """
    x = x * s[:, None, None, :]
    if up:
        _, height, width, _ = x.shape.as_list()
        out_channels = weight.shape.as_list()[2]
        shape = tf.stack([tf.shape(x)[0], height * 2 + 1, width * 2 + 1, out_channels])
        x = tf.nn.conv2d_transpose(x, weight, shape, strides=[1, 2, 2, 1], padding="VALID")
        return upfirdn(x, 1, AFTER_TRANSPOSED_CONV_PAD)
    return tf.nn.conv2d(x, weight, strides=[1, 1, 1, 1], padding="SAME")


def to_rgb(x: tf.Tensor, s: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """ToRGB (spec §3.5): the 1×1 modulated conv as one matmul per sample, styles folded into the [in, out]
    weight, so x is read once (no x·s pass) by a GEMM instead of a 3-output-channel convolution."""
    _, height, width, channels = x.shape.as_list()
    pixels = tf.reshape(x, [-1, height * width, channels])
    rgb = tf.matmul(pixels, s[:, :, None] * weight[None]) + bias
    return tf.reshape(rgb, [-1, height, width, weight.shape.as_list()[1]])


def demodulate_add_noise(y: tf.Tensor, s: tf.Tensor, demod: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """y·d + noise, d = 1/√(s²·Σ W'² + ε) per sample and output channel (spec §3.4)."""
    d = tf.rsqrt(tf.matmul(tf.square(s), demod) + DEMOD_EPS)
    return y * d[:, None, None, :] + noise


def bias_lrelu(y: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """lrelu₀.₂(y + b) *without* the gain √2: the next layer multiplies it into its styles."""
    return tf.nn.leaky_relu(tf.nn.bias_add(y, bias), alpha=LRELU_SLOPE)


def box_downsample(x: tf.Tensor, factor: int) -> tf.Tensor:
    """Mean over factor×factor blocks (the projector's 1024 → 256 step, spec §4)."""
    if factor == 1:
        return x
    return tf.nn.avg_pool2d(x, ksize=factor, strides=factor, padding="VALID")
