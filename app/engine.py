"""The engine interface app/ may call (docs/architecture.md): load once, project, synthesise. Nothing about
TF sessions, tensors or devices leaks above this line."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from stylegan2.projection import ProjectorConfig, StepInfo
from stylegan2.tiny import MARKER_FILE
from stylegan2.toonifier import ModelPaths, Toonifier, default_cache_dir

StepCallback = Callable[[int, int, List[float]], None]


class ProjectionCancelled(Exception):
    """The job was cancelled between two projection steps."""


class Engine:
    """One loaded Toonifier per process. Projections are serialised (one device); syntheses have their own
    lock, so a re-render never waits for a running projection."""

    def __init__(self, engine: str, models_dir: Path) -> None:
        started = time.perf_counter()
        paths = ModelPaths.in_dir(models_dir)
        self.name = engine
        self.models_dir = Path(models_dir)
        self.model_files = [p.name for p in (paths.ffhq, paths.toon, paths.perceptual)]
        self.tiny = (self.models_dir / MARKER_FILE).exists()
        self._toonifier = Toonifier(engine, paths, default_cache_dir(paths.ffhq))
        self._project_lock = threading.Lock()
        self._synthesis_lock = threading.Lock()
        self.warm_up()
        self.load_seconds = time.perf_counter() - started

    @property
    def resolution(self) -> int:
        return self._toonifier.resolution

    @property
    def num_ws(self) -> int:
        return self._toonifier.num_ws

    def warm_up(self) -> None:
        """One synthesis, so readiness means the models really render."""
        latents = np.repeat(self._toonifier.w_avg[None, None], self.num_ws, axis=1)
        image = self.synthesize(latents)
        if image.shape != (1, self.resolution, self.resolution, 3):
            raise RuntimeError("warm-up synthesis returned %s" % (image.shape,))

    def project(self, aligned: np.ndarray, steps: int, seeds: Sequence[int], on_step: Optional[StepCallback] = None,
                should_cancel: Optional[Callable[[], bool]] = None) -> np.ndarray:
        """aligned uint8 [B, R, R, 3] → W+ latents [B, num_ws, 512]; raises ProjectionCancelled."""
        def report(info: StepInfo) -> None:
            if on_step is not None:
                on_step(info.step, info.total, info.losses)

        with self._project_lock:
            result = self._toonifier.project(aligned, seeds, ProjectorConfig(steps=steps), report, should_cancel)
        if result.cancelled:
            raise ProjectionCancelled()
        return result.latents

    def synthesize(self, latents: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """uint8 [B, R, R, 3]; 1.0 = the blended model (Toonify), 0.0 = the FFHQ reconstruction."""
        with self._synthesis_lock:
            return self._toonifier.synthesize(np.asarray(latents, np.float32), strength)
