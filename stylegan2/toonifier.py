"""Load the three Toonify models (and the styles beside them) once and offer what the product needs: project
aligned faces with the FFHQ generator, synthesise latents with the cartoon-blended one or another style (or
between FFHQ and the style at a toon strength)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import pickles
from .contracts import Projector
from .engines import backend
from .generator_pair import GeneratorPair
from .model_files import ModelPaths
from .perceptual import describe_perceptual
from .precision import resolve
from .projection import (
    CancelCheck,
    ProjectionResult,
    ProjectorConfig,
    StepCallback,
    cached_w_statistics,
)
from .styles import DEFAULT_STYLE, LoadedStyles
from .timings import FRAMEWORK_IMPORT, PICKLE_READ, PROJECTOR_BUILD, phase


def default_cache_dir(model_path: Path, configured: Optional[Path] = None) -> Optional[Path]:
    """``configured`` (TOONIFY_CACHE_DIR in the app), else ``.cache`` beside the model when that folder is
    writable, else no cache."""
    if configured:
        return Path(configured)
    folder = Path(model_path).resolve().parent
    return folder / ".cache" if os.access(str(folder), os.W_OK) else None


class Toonifier:
    """Models loaded once per process; engine ``tf1`` or ``torch``."""

    def __init__(self, engine: str, paths: ModelPaths, cache_dir: Optional[Path] = None,
                 device: Optional[str] = None, styles_on_device: int = 0) -> None:
        """``cache_dir``: where w statistics are kept (None: computed at every start). ``device``: cpu, cuda,
        cuda:1 for the torch engine, None = CUDA when available; tf1 places its graphs itself.
        ``styles_on_device``: the most added styles held on the device at once (0: all; GeneratorPair)."""
        self.engine, self.paths = engine, paths
        with phase(FRAMEWORK_IMPORT):
            self.backend = backend(engine)
        self.generators = GeneratorPair(self.backend, paths.ffhq, paths.toon, device, styles_on_device, paths.styles)
        self.ffhq, self.ffhq_spec = self.generators.ffhq, self.generators.ffhq_spec  # what faces are projected with
        self.styles: LoadedStyles = self.generators.loaded_styles
        with phase(PICKLE_READ):
            self.perceptual = describe_perceptual(pickles.load(paths.perceptual))
        self.w_avg, self.w_std = cached_w_statistics(self.ffhq.map, self.ffhq_spec, paths.ffhq, cache_dir)
        self._projectors: Dict[Tuple[int, Tuple[object, ...]], Projector] = {}

    @property
    def resolution(self) -> int:
        return self.ffhq_spec.resolution

    @property
    def num_ws(self) -> int:
        return self.ffhq_spec.num_ws

    def precision(self, requested: str) -> str:
        """The precision projections run at when ``requested`` (``auto`` or a name of stylegan2.precision) is
        asked for on this engine and device; PrecisionUnavailable, saying what the device offers, otherwise."""
        return resolve(requested, self.engine, self.backend.device_traits(self.ffhq))

    def projector(self, batch: int, config: ProjectorConfig) -> Projector:
        """Projectors are cached per (batch, structure), never per step count: building one is costly in the
        tf1 engine and each adds to its graph for good (issue #15). Each step allocates and frees large buffers:
        on a CPU a process wants the allocator policy that keeps them (set at its entry: README, "Memory")."""
        key = (batch, config.structure)
        if key not in self._projectors:
            with phase(PROJECTOR_BUILD):
                self._projectors[key] = self.backend.build_projector(
                    self.ffhq, self.perceptual, config, self.w_avg, self.w_std, batch)
        return self._projectors[key]

    def project(self, aligned: np.ndarray, seeds: Sequence[int], config: ProjectorConfig,
                on_step: Optional[StepCallback] = None,
                should_cancel: Optional[CancelCheck] = None) -> ProjectionResult:
        """aligned: uint8 [B, R, R, 3] at the model's resolution."""
        if aligned.shape[1:3] != (self.resolution, self.resolution):
            raise ValueError("aligned faces must be %d×%d; got %s" % (self.resolution, self.resolution, aligned.shape))
        return self.projector(len(aligned), config).project(aligned, list(seeds), config, on_step, should_cancel)

    def synthesize(self, latents: np.ndarray, strength: float = 1.0, style: str = DEFAULT_STYLE) -> np.ndarray:
        """uint8 [B, R, R, 3]: 1.0 = the style (by default the blended model, the original Toonify output), 0.0 =
        the FFHQ model."""
        return self.generators.render(latents, strength, style)
