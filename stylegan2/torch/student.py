"""The fast-mode student U-Net in PyTorch (architecture and weight file in stylegan2.student): a trainable
module built from a StudentSpec, its export back to a spec, and the inference wrapper the service calls."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import LRELU_SLOPE
from ..student import (
    StudentSpec,
    check_size,
    describe_student,
    from_unit_range,
    strength_plane,
    to_unit_range,
    unet,
)
from . import ops


class _Layers:
    """The student's layers in PyTorch, NCHW (stylegan2.student.UNetLayers)."""

    def __init__(self, params: Dict[str, torch.Tensor]) -> None:
        self.params = params

    def conv(self, x: torch.Tensor, name: str, stride: int = 1) -> torch.Tensor:
        weight = self.params[name + "/weight"]
        return F.conv2d(x, weight, self.params[name + "/bias"], stride=stride, padding=weight.shape[-1] // 2)

    def lrelu(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, LRELU_SLOPE)

    def up_concat(self, y: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), skip], dim=1)

    def param(self, name: str) -> torch.Tensor:
        return self.params[name]


def student_graph(x: torch.Tensor, params: Dict[str, torch.Tensor], depth: int) -> torch.Tensor:
    """NCHW input → NCHW toon (stylegan2.student.unet)."""
    return unet(x, _Layers(params), depth)


def _to_oihw(name: str, value: np.ndarray) -> np.ndarray:
    """HWIO kernels → OIHW; the HWC position and mean maps → [1, C, H, W]."""
    if name in ("position", "mean"):
        return value.transpose(2, 0, 1)[None]
    return value.transpose(3, 2, 0, 1) if name.endswith("weight") else value


def _to_hwio(name: str, value: np.ndarray) -> np.ndarray:
    if name in ("position", "mean"):
        return value[0].transpose(1, 2, 0)
    return value.transpose(2, 3, 1, 0) if name.endswith("weight") else value


class StudentNet(torch.nn.Module):
    """Trainable parameters named as in the weight file ('/' → '__' because of torch's naming rules)."""

    def __init__(self, spec: StudentSpec) -> None:
        super().__init__()
        self.depth, self.meta = spec.depth, dict(spec.meta)
        self.names = list(spec.weights)
        self.weights = torch.nn.ParameterDict(OrderedDict(
            (name.replace("/", "__"), torch.nn.Parameter(torch.as_tensor(np.ascontiguousarray(_to_oihw(name, v)))))
            for name, v in spec.weights.items()))

    def params(self) -> Dict[str, torch.Tensor]:
        return {name: self.weights[name.replace("/", "__")] for name in self.names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return student_graph(x, self.params(), self.depth)

    def export(self, meta: Optional[Dict] = None) -> StudentSpec:
        """The weights back in the engine-neutral layout (HWIO kernels), for save_student."""
        arrays = OrderedDict((name, _to_hwio(name, t.detach().float().cpu().numpy()))
                             for name, t in self.params().items())
        return describe_student(arrays, dict(self.meta, **(meta or {})))


class Student:
    """A loaded student on one device: uint8 aligned faces in, uint8 toons out (same as stylegan2.tf.student)."""

    def __init__(self, spec: StudentSpec, device: Optional[str] = None) -> None:
        """``device``: cpu, cuda, cuda:1; None = CUDA when available."""
        self.spec = spec
        self.device = ops.pick_device(device)
        self._params = {name: torch.as_tensor(np.ascontiguousarray(_to_oihw(name, v)), device=self.device)
                        for name, v in spec.weights.items()}
        self._lock = threading.Lock()

    @torch.inference_mode()
    def toonify(self, aligned: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """aligned uint8 [B, R, R, 3] at the student's resolution → toons uint8 [B, R, R, 3]."""
        check_size(self.spec, aligned.shape[1])
        x = to_unit_range(aligned)
        if self.spec.takes_strength:
            x = np.concatenate([x, strength_plane(x, strength)], axis=3)
        x = torch.as_tensor(x, device=self.device).permute(0, 3, 1, 2)
        with self._lock:
            y = student_graph(x, self._params, self.spec.depth)
        return from_unit_range(y.permute(0, 2, 3, 1).cpu().numpy())
