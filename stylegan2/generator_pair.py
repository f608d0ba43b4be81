"""The FFHQ generator and its toons loaded side by side, rendering the same latents at any toon strength: the
toonifier's output and the student's training pairs come from this one place. A toon is a style (issue 26):
the default one plus any added, each rendered from the same W+ without projecting again."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from . import pickles
from .blending import interpolate_variables
from .contracts import Backend, GeneratorNetwork
from .errors import ModelFileError
from .held import LeastRecentlyUsed
from .layout import GeneratorSpec, describe
from .sampling import to_uint8
from .styles import DEFAULT_STYLE, load_styles
from .timings import PICKLE_READ, phase


class _Toon:
    """One style's generator, and a second one holding the weights interpolated with FFHQ's for the last
    in-between strength: made on first use (most styles are only rendered at full strength) and reloaded only
    when the strength changes."""

    def __init__(self, networks: Backend, spec: GeneratorSpec, generator: GeneratorNetwork,
                 device: Optional[str]) -> None:
        self.networks, self.spec, self.generator, self.device = networks, spec, generator, device
        self._mix: Optional[GeneratorNetwork] = None
        self._mix_strength: Optional[float] = None

    def at(self, ffhq: GeneratorSpec, strength: float) -> GeneratorNetwork:
        if strength == 1.0:
            return self.generator
        if self._mix_strength != strength:
            variables = interpolate_variables(ffhq.synthesis_vars, self.spec.synthesis_vars, strength)
            if self._mix is None:  # built from the interpolated weights: never converted twice
                self._mix = self.networks.Generator(replace(self.spec, synthesis_vars=variables), self.device)
            else:
                self._mix.load_synthesis(variables)
            self._mix_strength = strength
        return self._mix


class GeneratorPair:
    """The FFHQ generator and the default toon (``DEFAULT_STYLE``), plus any styles added. Without a toon model
    every strength is the FFHQ one. ``styles_on_device``: the most added styles whose generators are held at once
    (0: all); the others keep their weights on the host (their specs) and are built on first use, the least
    recently used one dropped."""

    def __init__(self, networks: Backend, ffhq_path: Path, toon_path: Optional[Path] = None,
                 device: Optional[str] = None, styles_on_device: int = 0, styles: Optional[Path] = None) -> None:
        """``styles``: a folder of added styles (stylegan2.styles), checked against the FFHQ generator's record
        here, the only time that record is needed; what was found is ``loaded_styles``."""
        self.networks, self.device = networks, device
        self.ffhq_path = Path(ffhq_path)
        self.toon_path = None if toon_path is None else Path(toon_path)
        with phase(PICKLE_READ):
            ffhq_gs = pickles.load_generator(ffhq_path)
            self.ffhq_spec = describe(ffhq_gs)
            self.toon_spec = self.ffhq_spec if toon_path is None else describe(pickles.load_generator(toon_path))
        if (self.toon_spec.resolution, self.toon_spec.num_ws) != (self.ffhq_spec.resolution, self.ffhq_spec.num_ws):
            raise ModelFileError("%s and %s have different resolutions" % (ffhq_path, toon_path))
        self.ffhq = networks.Generator(self.ffhq_spec, device)
        self.toon = self.ffhq if toon_path is None else networks.Generator(self.toon_spec, device)
        self._specs: Dict[str, GeneratorSpec] = {DEFAULT_STYLE: self.toon_spec}
        self.held = LeastRecentlyUsed(styles_on_device, self._build,
                                      {DEFAULT_STYLE: _Toon(networks, self.toon_spec, self.toon, device)})
        self.loaded_styles = load_styles(styles, ffhq_gs, self.toon_spec)
        for name, spec in self.loaded_styles.specs.items():
            if name != DEFAULT_STYLE:
                self.add_style(name, spec)

    @property
    def styles(self) -> List[str]:
        return list(self._specs)

    def add_style(self, name: str, spec: GeneratorSpec) -> None:
        """Add a style that shares FFHQ's latent space (stylegan2.styles checked it): onto the device now while
        the bound allows, else at its first render."""
        self._specs[name] = spec
        self.held.warm([name])

    def _build(self, name: str) -> _Toon:
        spec = self._specs[name]
        return _Toon(self.networks, spec, self.networks.Generator(spec, self.device), self.device)

    def render(self, ws: np.ndarray, strength: float = 1.0, style: str = DEFAULT_STYLE) -> np.ndarray:
        """uint8 [B, R, R, 3] of W+ ``ws``: 1.0 = the style (for the default, the original Toonify output),
        0.0 = FFHQ. KeyError for a style that was never added."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError("strength must be within [0, 1]; got %r" % strength)
        if style not in self._specs:
            raise KeyError(style)
        if strength == 0.0:
            return to_uint8(self.ffhq.synthesize(ws))
        return to_uint8(self.held.get(style).at(self.ffhq_spec, strength).synthesize(ws))
