"""The engine contract: what the neutral layer, app/ and the tools may call on an
engine, as protocols both ``stylegan2/tf`` and ``stylegan2/torch`` satisfy structurally (checked by
tests/stylegan2/test_contracts.py). NumPy in, NumPy out: no sessions, graphs, tensors or devices leak out."""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import numpy as np
from typing_extensions import Protocol

from .layout import GeneratorSpec
from .perceptual import PerceptualSpec
from .precision import DeviceTraits
from .projection import CancelCheck, ProjectionResult, ProjectorConfig, StepCallback
from .student import StudentSpec


class GeneratorNetwork(Protocol):
    """Mapping and synthesis of one generator, built from its GeneratorSpec."""

    spec: GeneratorSpec

    def map(self, z: np.ndarray) -> np.ndarray:
        """z [N, z_dim] → w [N, w_dim]."""

    def synthesize(self, ws: np.ndarray, noise: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """W+ [N, num_ws, w_dim] → images NCHW float32 in about [-1, 1]; ``noise`` per map [N, H, W]."""

    def load_synthesis(self, variables: Mapping[str, np.ndarray]) -> None:
        """Swap in other synthesis variables of the same shapes (blends, interpolations)."""


class Projector(Protocol):
    """Built once per (generator, batch size, config structure); ``project`` may run many times."""

    def project(self, targets: np.ndarray, seeds: Sequence[int], config: ProjectorConfig,
                on_step: Optional[StepCallback] = None,
                should_cancel: Optional[CancelCheck] = None) -> ProjectionResult:
        """uint8 [B, H, W, 3] aligned faces → W+ latents [B, num_ws, w_dim] (in the result)."""

    def latents(self) -> np.ndarray:
        """The current latents, [B, num_ws, w_dim]."""

    def noise_maps(self) -> List[np.ndarray]:
        """The current per-face noise maps, [B, H, W] each."""

    def reconstruction(self) -> np.ndarray:
        """uint8 [B, H, W, 3] of the current latents with the optimised noise."""


class StudentNetwork(Protocol):
    """The fast-mode student's forward pass."""

    spec: StudentSpec

    def toonify(self, aligned: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """uint8 [B, R, R, 3] aligned faces → uint8 toons of the same shape."""


class Backend(Protocol):
    """One engine's surface: the module ``stylegan2/<engine>/backend.py``. ``device``: cpu, cuda, cuda:1 for
    torch, None = CUDA when available; tf1 places its graphs itself. An engine's projector takes only a
    generator of the same engine."""

    def Generator(self, spec: GeneratorSpec, device: Optional[str] = None) -> GeneratorNetwork:
        """A generator loaded for inference."""

    def Student(self, spec: StudentSpec, device: Optional[str] = None) -> StudentNetwork:
        """A fast-mode student loaded for inference."""

    def build_projector(self, generator: GeneratorNetwork, perceptual: PerceptualSpec, config: ProjectorConfig,
                        w_avg: np.ndarray, w_std: float, batch: int) -> Projector:
        """The projector of ``batch`` faces for ``generator``."""

    def lpips_distance(self, perceptual: PerceptualSpec, images0: np.ndarray, images1: np.ndarray) -> List[float]:
        """LPIPS between two NCHW [0, 255] batches, per pair."""

    def regularization_value(self, noise: np.ndarray) -> np.ndarray:
        """The projector's noise regulariser of [B, H, W] maps, per face."""

    def free_device_bytes(self) -> Optional[int]:
        """Free memory of the device projections run on; None on the CPU."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the framework's out-of-memory error."""

    def device_traits(self, generator: GeneratorNetwork) -> DeviceTraits:
        """What decides the projection precision on the device ``generator`` runs on (stylegan2.precision)."""
