"""The fast-mode student U-Net in TF 1.15 graph mode (architecture and weight file in stylegan2.student); the
same forward pass as stylegan2.torch.student, NHWC."""
from __future__ import annotations

import threading
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from ..constants import LRELU_SLOPE
from ..student import StudentSpec, check_size, from_unit_range, strength_plane, to_unit_range, unet
from .networks import session_config


def _nearest_up2(x: tf.Tensor) -> tf.Tensor:
    """Each pixel repeated 2×2 (what F.interpolate(mode='nearest') does at scale 2)."""
    shape = tf.shape(x)
    channels = int(x.shape[3])
    y = tf.tile(x[:, :, None, :, None, :], [1, 1, 2, 1, 2, 1])
    return tf.reshape(y, [shape[0], shape[1] * 2, shape[2] * 2, channels])


class _Layers:
    """The student's layers in TF, NHWC (stylegan2.student.UNetLayers)."""

    def __init__(self, params: Mapping[str, tf.Tensor]) -> None:
        self.params = params

    def conv(self, x: tf.Tensor, name: str, stride: int = 1) -> tf.Tensor:
        """Symmetric padding of k//2 then VALID, so stride 2 pads like PyTorch's padding=1 (not TF's SAME)."""
        weight = self.params[name + "/weight"]
        pad = int(weight.shape[0]) // 2
        if pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return tf.nn.conv2d(x, weight, strides=[1, stride, stride, 1], padding="VALID") + self.params[name + "/bias"]

    def lrelu(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.leaky_relu(x, LRELU_SLOPE)

    def up_concat(self, y: tf.Tensor, skip: tf.Tensor) -> tf.Tensor:
        return tf.concat([_nearest_up2(y), skip], axis=3)

    def param(self, name: str) -> tf.Tensor:
        return self.params[name]


def student_graph(x: tf.Tensor, params: Mapping[str, tf.Tensor], depth: int) -> tf.Tensor:
    """NHWC input → NHWC toon (stylegan2.student.unet)."""
    return unet(x, _Layers(params), depth)


class Student:
    """A loaded student: its own graph and session; uint8 aligned faces in, uint8 toons out."""

    def __init__(self, spec: StudentSpec, device: Optional[str] = None) -> None:
        """``device``: unused, as in stylegan2.tf.networks.Generator."""
        self.spec = spec
        self.graph = tf.Graph()
        with self.graph.as_default():
            params = {name: tf.constant(value) for name, value in spec.weights.items()}
            side = spec.resolution
            self._input = tf.placeholder(tf.float32, [None, side, side, spec.in_channels], name="student_input")
            self._output = student_graph(self._input, params, spec.depth)
            self.session = tf.Session(graph=self.graph, config=session_config())
        self._lock = threading.Lock()

    def toonify(self, aligned: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """aligned uint8 [B, R, R, 3] at the student's resolution → toons uint8 [B, R, R, 3]."""
        check_size(self.spec, aligned.shape[1])
        x = to_unit_range(aligned)
        if self.spec.takes_strength:
            x = np.concatenate([x, strength_plane(x, strength)], axis=3)
        with self._lock:
            y = self.session.run(self._output, {self._input: x})
        return from_unit_range(y)
