"""TF 1.15 building blocks in NHWC, the layout TF's CPU kernels accept (spec §3)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from ..filters import AFTER_TRANSPOSED_CONV_PAD, SKIP_UPSAMPLE_PAD, UP, fir_kernel
from ..projection import REGION_FIR

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8


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
        kernel = fir_kernel(gain=UP * UP)[::-1, ::-1]  # true convolution; the kernel is symmetric anyway
        kernel = np.tile(kernel[:, :, None, None], [1, 1, channels, 1])
        return tf.nn.depthwise_conv2d(x, tf.constant(kernel), strides=[1, 1, 1, 1], padding="VALID")


def upsample_skip(img: tf.Tensor) -> tf.Tensor:
    """upsample_2d of the RGB skip path: ×2 with pad (2, 1)."""
    return upfirdn(img, UP, SKIP_UPSAMPLE_PAD)


def styles(w: tf.Tensor, style_weight: tf.Tensor, style_bias: tf.Tensor) -> tf.Tensor:
    """s = w·A' + (a + 1) (spec §3.4); [N, C_in]."""
    return tf.matmul(w, style_weight) + style_bias


def modulated_conv(
    x: tf.Tensor,
    s: tf.Tensor,
    weight: tf.Tensor,
    demod: Optional[tf.Tensor],
    up: bool,
) -> tf.Tensor:
    """Modulated (and demodulated) conv in the non-fused form: scale inputs by s, convolve with the shared
    weight, scale outputs by d. Mathematically the per-sample weight of spec §3.4; works on CPU and GPU.

    ``weight`` is HWIO for plain convs and, for ``up``, already flipped to conv2d_transpose's
    [h, w, out, in] layout (spec §3.6: transposed conv with the flipped weight, then FIR pad (1, 1)).
    """
    x = x * s[:, None, None, :]
    if up:
        _, height, width, _ = x.shape.as_list()
        out_channels = weight.shape.as_list()[2]
        shape = tf.stack([tf.shape(x)[0], height * 2 + 1, width * 2 + 1, out_channels])
        x = tf.nn.conv2d_transpose(x, weight, shape, strides=[1, 2, 2, 1], padding="VALID")
        x = upfirdn(x, 1, AFTER_TRANSPOSED_CONV_PAD)
    elif weight.shape.as_list()[0] == 1:
        x = tf.nn.conv2d(x, weight, strides=[1, 1, 1, 1], padding="VALID")
    else:
        x = tf.nn.conv2d(x, weight, strides=[1, 1, 1, 1], padding="SAME")
    if demod is not None:
        d = tf.rsqrt(tf.matmul(tf.square(s), demod) + DEMOD_EPS)
        x = x * d[:, None, None, :]
    return x


def box_downsample(x: tf.Tensor, factor: int) -> tf.Tensor:
    """Mean over factor×factor blocks (the projector's 1024 → 256 step, spec §4)."""
    if factor == 1:
        return x
    return tf.nn.avg_pool2d(x, ksize=factor, strides=factor, padding="VALID")
