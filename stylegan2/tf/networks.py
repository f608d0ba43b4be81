"""Mapping and skip-architecture synthesis in TF 1.15 graph mode, built from a GeneratorSpec."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from ..constants import LRELU_GAIN, PIXEL_NORM_EPS
from ..layout import GeneratorSpec
from ..projection import REGION_BIAS_ACT, REGION_NOISE, layer_region
from ..weights import mapping_weights, synthesis_weights
from . import ops


def session_config() -> tf.ConfigProto:
    """GPU memory growth on: the original's CUDA_ERROR_OUT_OF_MEMORY fix on small cards."""
    config = tf.ConfigProto()
    config.gpu_options.allow_growth = True
    return config


def tf_layout(spec: GeneratorSpec, variables: Mapping[str, np.ndarray] = None) -> "OrderedDict[str, np.ndarray]":
    """Runtime synthesis weights (NumPy) rearranged for the TF graph: NHWC const, transposed-conv filters,
    ToRGB weights as [in, out] matrices."""
    weights = synthesis_weights(spec, variables)
    arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
    arrays["const"] = np.transpose(weights.const, (0, 2, 3, 1))
    for index, (layer, lw) in enumerate(zip(spec.layers, weights.layers)):
        key = "L%d/" % index
        weight = lw.weight
        if layer.kind == "up":
            weight = np.ascontiguousarray(np.transpose(weight[::-1, ::-1], (0, 1, 3, 2)))
        elif layer.kind == "rgb":
            weight = weight[0, 0]  # [in, out]: a matrix for ops.to_rgb
        arrays[key + "weight"] = weight
        arrays[key + "style_weight"] = lw.style_weight
        arrays[key + "style_bias"] = lw.style_bias
        arrays[key + "bias"] = lw.bias
        arrays[key + "noise_strength"] = np.float32(lw.noise_strength)
        if lw.demod is not None:
            arrays[key + "demod"] = lw.demod
    for index, noise in enumerate(weights.noise):
        arrays["noise%d" % index] = noise[..., None]
    return arrays


def mapping_layout(spec: GeneratorSpec) -> "OrderedDict[str, np.ndarray]":
    arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for index, (weight, bias) in enumerate(mapping_weights(spec)):
        arrays["M%d/weight" % index] = weight
        arrays["M%d/bias" % index] = bias
    return arrays


class ParamStore:
    """Non-trainable variables fed from NumPy through placeholders, so the graph stays small and the
    weights can be swapped (e.g. toon strength) without rebuilding it."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._feeds: Dict[str, tf.Tensor] = {}
        self.vars: Dict[str, tf.Variable] = {}
        for name, value in arrays.items():
            placeholder = tf.placeholder(tf.float32, shape=np.shape(value), name="feed_" + name.replace("/", "_"))
            self._feeds[name] = placeholder
            self.vars[name] = tf.Variable(placeholder, trainable=False, name=name.replace("/", "_"))
        self._init = tf.group(*[v.initializer for v in self.vars.values()])

    def load(self, session: tf.Session, arrays: Mapping[str, np.ndarray]) -> None:
        session.run(self._init, {self._feeds[name]: arrays[name] for name in self._feeds})

    def __getitem__(self, name: str) -> tf.Variable:
        return self.vars[name]


def mapping_graph(z: tf.Tensor, params: ParamStore, spec: GeneratorSpec) -> tf.Tensor:
    """z [N, z_dim] → w [N, w_dim] (spec §3.3, without broadcast or truncation)."""
    x = z
    if spec.normalize_latents:
        x = x * tf.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + PIXEL_NORM_EPS)
    for index in range(spec.mapping_layers):
        x = ops.lrelu_gain(tf.matmul(x, params["M%d/weight" % index]) + params["M%d/bias" % index])
    return x


def synthesis_graph(
    ws: tf.Tensor, noise: Sequence[tf.Tensor], params: ParamStore, spec: GeneratorSpec
) -> tf.Tensor:
    """W+ [N, num_ws, w_dim] and per-map noise [N|1, H, W, 1] → images NCHW (spec §3.7). Each layer's output
    leaves out the activation's gain √2; the next layer folds it into its input modulation."""
    batch = tf.shape(ws)[0]
    x = tf.tile(params["const"], [batch, 1, 1, 1])
    gain = 1.0
    img = None
    for index, layer in enumerate(spec.layers):
        with tf.name_scope(layer_region(layer)):
            key = "L%d/" % index
            s = ops.styles(ws[:, layer.w_index], params[key + "style_weight"], params[key + "style_bias"])
            if layer.kind == "rgb":
                y = ops.to_rgb(x, s * gain, params[key + "weight"], params[key + "bias"])
                img = y if img is None else ops.upsample_skip(img) + y
            else:
                y = ops.modulated_conv(x, s * gain, params[key + "weight"], layer.kind == "up")
                with tf.name_scope(REGION_NOISE):
                    y = ops.demodulate_add_noise(y, s, params[key + "demod"],
                                                 noise[layer.noise_index] * params[key + "noise_strength"])
                with tf.name_scope(REGION_BIAS_ACT):
                    x = ops.bias_lrelu(y, params[key + "bias"])
                gain = LRELU_GAIN
    return tf.transpose(img, [0, 3, 1, 2])


class Generator:
    """A loaded generator: its own graph and session; NumPy in, NumPy out."""

    def __init__(self, spec: GeneratorSpec, device: Optional[str] = None) -> None:
        """``device`` is the engines' common argument and unused here: TensorFlow places the graph itself (on
        the GPU when it sees one, CUDA_VISIBLE_DEVICES picks which)."""
        self.spec = spec
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.synthesis_params = ParamStore(tf_layout(spec))
            self.mapping_params = ParamStore(mapping_layout(spec))
            self._z = tf.placeholder(tf.float32, [None, spec.z_dim], name="z")
            self._w = mapping_graph(self._z, self.mapping_params, spec)
            self._ws = tf.placeholder(tf.float32, [None, spec.num_ws, spec.w_dim], name="ws")
            self._noise: List[tf.Tensor] = [
                tf.placeholder_with_default(self.synthesis_params["noise%d" % i], [None, res, res, 1])
                for i, res in enumerate(spec.noise_resolutions)
            ]
            self._images = synthesis_graph(self._ws, self._noise, self.synthesis_params, spec)
            self.session = tf.Session(graph=self.graph, config=session_config())
        self.synthesis_params.load(self.session, tf_layout(spec))
        self.mapping_params.load(self.session, mapping_layout(spec))

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
        self.synthesis_params.load(self.session, tf_layout(self.spec, variables))
