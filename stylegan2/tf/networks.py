"""Mapping and skip-architecture synthesis in TF 1.15 graph mode, built from a GeneratorSpec."""
from __future__ import annotations

from dataclasses import replace
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from ..constants import LRELU_GAIN, PIXEL_NORM_EPS
from ..layout import GeneratorSpec, LayerSpec
from ..precision import DeviceTraits
from ..regions import REGION_BIAS_ACT, REGION_NOISE, layer_region
from ..timings import GRAPH_BUILD, WEIGHT_CONVERSION, phase
from ..weights import SynthesisWeights, mapping_weights, synthesis_weights
from . import ops


def session_config() -> tf.ConfigProto:
    """GPU memory growth on: the original's CUDA_ERROR_OUT_OF_MEMORY fix on small cards."""
    config = tf.ConfigProto()
    config.gpu_options.allow_growth = True
    return config


def device_traits(generator: "Generator") -> DeviceTraits:
    """A CUDA device when TensorFlow sees a GPU (it places the graphs there), else the CPU."""
    gpus = tf.config.experimental.list_physical_devices("GPU")
    return DeviceTraits("cuda" if gpus else "cpu")


def tf_arrays(spec: GeneratorSpec,
              variables: Mapping[str, np.ndarray] = None) -> SynthesisWeights[np.ndarray]:
    """Runtime synthesis weights (NumPy) rearranged for the TF graph: NHWC const and noise, transposed-conv
    filters, ToRGB weights as [in, out] matrices."""
    weights = synthesis_weights(spec, variables)
    return SynthesisWeights(
        const=np.transpose(weights.const, (0, 2, 3, 1)),
        layers=[replace(lw, weight=_tf_weight(layer, lw.weight)) for layer, lw in zip(spec.layers, weights.layers)],
        noise=[noise[..., None] for noise in weights.noise],
    )


def _tf_weight(layer: LayerSpec, weight: np.ndarray) -> np.ndarray:
    if layer.kind == "up":  # conv2d_transpose's [h, w, out, in], flipped (spec §3.6)
        return np.ascontiguousarray(np.transpose(weight[::-1, ::-1], (0, 1, 3, 2)))
    if layer.kind == "rgb":
        return weight[0, 0]  # [in, out]: a matrix for ops.to_rgb
    return weight


class Feeds:
    """Non-trainable variables fed from NumPy through placeholders, so the graph stays small and the
    weights can be swapped (e.g. toon strength) without rebuilding it."""

    def __init__(self) -> None:
        self._placeholders: List[tf.Tensor] = []
        self._variables: List[tf.Variable] = []

    def variable(self, value: np.ndarray) -> tf.Variable:
        """A variable of ``value``'s shape (call inside the graph); ``load`` gives it its values."""
        placeholder = tf.placeholder(tf.float32, shape=np.shape(value))
        self._placeholders.append(placeholder)
        self._variables.append(tf.Variable(placeholder, trainable=False))
        return self._variables[-1]

    def load(self, session: tf.Session, values: Sequence[np.ndarray]) -> None:
        """One value per variable, in the order they were made."""
        if len(values) != len(self._variables):
            raise ValueError("%d values for %d variables" % (len(values), len(self._variables)))
        session.run([v.initializer for v in self._variables], dict(zip(self._placeholders, values)))


def mapping_graph(z: tf.Tensor, layers: Sequence[Tuple[tf.Tensor, tf.Tensor]], spec: GeneratorSpec) -> tf.Tensor:
    """z [N, z_dim] → w [N, w_dim] (spec §3.3, without broadcast or truncation)."""
    x = z
    if spec.normalize_latents:
        x = x * tf.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + PIXEL_NORM_EPS)
    for weight, bias in layers:
        x = ops.lrelu_gain(tf.matmul(x, weight) + bias)
    return x


def synthesis_graph(
    ws: tf.Tensor, noise: Sequence[tf.Tensor], weights: SynthesisWeights[tf.Tensor], spec: GeneratorSpec
) -> tf.Tensor:
    """W+ [N, num_ws, w_dim] and per-map noise [N|1, H, W, 1] → images NCHW (spec §3.7). Each layer's output
    leaves out the activation's gain √2; the next layer folds it into its input modulation."""
    batch = tf.shape(ws)[0]
    x = tf.tile(weights.const, [batch, 1, 1, 1])
    gain = 1.0
    img = None
    for layer, lw in zip(spec.layers, weights.layers):
        with tf.name_scope(layer_region(layer)):
            s = ops.styles(ws[:, layer.w_index], lw.style_weight, lw.style_bias)
            if layer.kind == "rgb":
                y = ops.to_rgb(x, s * gain, lw.weight, lw.bias)
                if spec.conv_clamp is not None:
                    y = tf.clip_by_value(y, -spec.conv_clamp, spec.conv_clamp)
                img = y if img is None else ops.upsample_skip(img) + y
            else:
                y = ops.modulated_conv(x, s * gain, lw.weight, layer.kind == "up")
                with tf.name_scope(REGION_NOISE):
                    y = ops.demodulate_add_noise(y, s, lw.demod, noise[layer.noise_index] * lw.noise_strength)
                with tf.name_scope(REGION_BIAS_ACT):
                    x = ops.bias_lrelu(y, lw.bias)
                    if spec.conv_clamp is not None:  # x lacks the gain √2 that ADA clamps after
                        x = tf.clip_by_value(x, -spec.conv_clamp / LRELU_GAIN, spec.conv_clamp / LRELU_GAIN)
                gain = LRELU_GAIN
    return tf.transpose(img, [0, 3, 1, 2])


class Generator:
    """A loaded generator: its own graph and session; NumPy in, NumPy out."""

    def __init__(self, spec: GeneratorSpec, device: Optional[str] = None) -> None:
        """``device`` is the engines' common argument and unused here: TensorFlow places the graph itself (on
        the GPU when it sees one, CUDA_VISIBLE_DEVICES picks which)."""
        self.spec = spec
        self.graph = tf.Graph()
        with phase(WEIGHT_CONVERSION):
            synthesis, mapping = tf_arrays(spec), mapping_weights(spec)
        self._synthesis_feeds, mapping_feeds = Feeds(), Feeds()
        with phase(GRAPH_BUILD), self.graph.as_default():
            self.synthesis = synthesis.map(self._synthesis_feeds.variable)
            self._z = tf.placeholder(tf.float32, [None, spec.z_dim], name="z")
            self._w = mapping_graph(self._z, [(mapping_feeds.variable(w), mapping_feeds.variable(b))
                                              for w, b in mapping], spec)
            self._ws = tf.placeholder(tf.float32, [None, spec.num_ws, spec.w_dim], name="ws")
            self._noise: List[tf.Tensor] = [
                tf.placeholder_with_default(stored, [None, res, res, 1])
                for stored, res in zip(self.synthesis.noise, spec.noise_resolutions)
            ]
            self._images = synthesis_graph(self._ws, self._noise, self.synthesis, spec)
            self.session = tf.Session(graph=self.graph, config=session_config())
        with phase(WEIGHT_CONVERSION):  # into the session's variables
            self._synthesis_feeds.load(self.session, synthesis.values())
            mapping_feeds.load(self.session, [array for layer in mapping for array in layer])

    def map(self, z: np.ndarray) -> np.ndarray:
        return self.session.run(self._w, {self._z: np.asarray(z, np.float32)})

    def synthesize(self, ws: np.ndarray, noise: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """Images NCHW float32. ``noise``: per-map [N, H, W] arrays; default the stored buffers."""
        feed = {self._ws: np.asarray(ws, np.float32)}
        if noise is not None:
            feed.update({ph: np.asarray(n, np.float32)[..., None] for ph, n in zip(self._noise, noise)})
        return self.session.run(self._images, feed)

    def load_synthesis(self, variables: Mapping[str, np.ndarray]) -> None:
        """Swap in other synthesis variables of the same shapes (blends, interpolations)."""
        self._synthesis_feeds.load(self.session, tf_arrays(self.spec, variables).values())
