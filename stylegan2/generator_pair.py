"""The FFHQ generator and its toon loaded side by side, rendering the same latents at any toon strength: the
toonifier's output and the student's training pairs come from this one place."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from . import pickles
from .blending import interpolate_variables
from .contracts import Backend, GeneratorNetwork
from .errors import ModelFileError
from .layout import describe
from .sampling import to_uint8
from .timings import PICKLE_READ, phase


class GeneratorPair:
    """Both generators of one engine, and a third holding the weights interpolated for the last in-between
    strength (reloaded only when the strength changes; built at the first one, not at start-up, where it held
    the toon's weights converted for nothing). Without a toon model every strength is the FFHQ one."""

    def __init__(self, networks: Backend, ffhq_path: Path, toon_path: Optional[Path] = None,
                 device: Optional[str] = None) -> None:
        self.ffhq_path = Path(ffhq_path)
        self.toon_path = None if toon_path is None else Path(toon_path)
        with phase(PICKLE_READ):
            self.ffhq_spec = describe(pickles.load_generator(ffhq_path))
            self.toon_spec = self.ffhq_spec if toon_path is None else describe(pickles.load_generator(toon_path))
        if (self.toon_spec.resolution, self.toon_spec.num_ws) != (self.ffhq_spec.resolution, self.ffhq_spec.num_ws):
            raise ModelFileError("%s and %s have different resolutions" % (ffhq_path, toon_path))
        self._networks, self._device = networks, device
        self.ffhq = networks.Generator(self.ffhq_spec, device)
        self.toon = self.ffhq
        self._mix: Optional[GeneratorNetwork] = self.ffhq
        if toon_path is not None:
            self.toon, self._mix = networks.Generator(self.toon_spec, device), None
        self._mix_strength: Optional[float] = None

    def render(self, ws: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """uint8 [B, R, R, 3] of W+ ``ws``: 1.0 = the blended toon (the original Toonify output), 0.0 = FFHQ."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError("strength must be within [0, 1]; got %r" % strength)
        if strength == 1.0:
            return to_uint8(self.toon.synthesize(ws))
        if strength == 0.0:
            return to_uint8(self.ffhq.synthesize(ws))
        if self._mix_strength != strength:
            variables = interpolate_variables(self.ffhq_spec.synthesis_vars, self.toon_spec.synthesis_vars, strength)
            if self._mix is None:
                self._mix = self._networks.Generator(replace(self.toon_spec, synthesis_vars=variables), self._device)
            else:
                self._mix.load_synthesis(variables)
            self._mix_strength = strength
        return to_uint8(self._mix.synthesize(ws))
