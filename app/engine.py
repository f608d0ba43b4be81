"""The engine interface app/ may call (docs/architecture.md): load once, project, synthesise. Nothing about
TF sessions, tensors or devices leaks above this line."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from stylegan2.engines import backend
from stylegan2.memory import batch_that_fits, bytes_per_face
from stylegan2.model_files import MARKER_FILE, ModelPaths
from stylegan2.projection import ProjectorConfig, StepInfo
from stylegan2.toonifier import Toonifier, default_cache_dir

from .errors import DeviceOutOfMemory

StepCallback = Callable[[int, int, List[float]], None]
CPU_DEVICE_BYTES = 8 << 30  # no GPU: plan batches as for the baseline card, an 8 GB RTX 2070
MAX_BATCH = 4
log = logging.getLogger("toonify.engine")


class ProjectionCancelled(Exception):
    """The job was cancelled between two projection steps."""


class BatchOutOfMemory(Exception):
    """A projection batch did not fit in device memory (the engine's own error, or the budget check)."""


class Engine:
    """One loaded Toonifier per process. Projections are serialised (one device); syntheses have their own
    lock, so a re-render never waits for a running projection."""

    def __init__(self, engine: str, models_dir: Path, device_memory_bytes: int = 0,
                 cache_dir: Optional[Path] = None, device: str = "") -> None:
        """``device_memory_bytes``: what projections may use; 0 = the device's free memory once the models
        are loaded (CPU: CPU_DEVICE_BYTES). ``cache_dir``, ``device``: Settings.cache_dir, Settings.device."""
        started = time.perf_counter()
        paths = ModelPaths.in_dir(models_dir)
        self.name = engine
        self.models_dir = Path(models_dir)
        self.model_files = [p.name for p in (paths.ffhq, paths.toon, paths.perceptual)]
        self.tiny = (self.models_dir / MARKER_FILE).exists()
        self._toonifier = Toonifier(engine, paths, default_cache_dir(paths.ffhq, cache_dir), device or None)
        self._project_lock = threading.Lock()
        self._synthesis_lock = threading.Lock()
        self._backend = backend(engine)
        self.warm_up()
        self.per_face_bytes = bytes_per_face(self._toonifier.ffhq_spec, self._toonifier.perceptual.tap_channels)
        self.device_bytes = device_memory_bytes or self._backend.free_device_bytes() or CPU_DEVICE_BYTES
        self.max_batch = batch_that_fits(self.device_bytes, self.per_face_bytes, MAX_BATCH)
        self.oom_ceiling: Optional[int] = None  # the batch that last ran out of memory, halved
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

        if len(aligned) * self.per_face_bytes > self.device_bytes:
            raise BatchOutOfMemory("%d faces need ~%.1f GB; %.1f GB available"
                                   % (len(aligned), len(aligned) * self.per_face_bytes / 1e9, self.device_bytes / 1e9))
        try:
            with self._project_lock:
                result = self._toonifier.project(aligned, seeds, ProjectorConfig(steps=steps), report,
                                                 should_cancel)
        except Exception as exc:
            if self._backend.is_out_of_memory(exc):
                raise BatchOutOfMemory(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            raise
        if result.cancelled:
            raise ProjectionCancelled()
        return result.latents

    def project_all(self, aligned: np.ndarray, steps: int, first_seed: int, batch_size: int = 0,
                    on_step: Optional[StepCallback] = None,
                    should_cancel: Optional[Callable[[], bool]] = None) -> np.ndarray:
        """All faces, in batches of ``batch_size`` (0: as many as fit). A batch that runs out of device memory
        is split in halves and retried, and later jobs start from the smaller size; face k always gets seed
        first_seed + k, whatever the batching."""
        size = batch_size if batch_size > 0 else self.max_batch
        if self.oom_ceiling is not None:
            size = min(size, self.oom_ceiling)
        latents, first = [], 0
        while first < len(aligned):
            chunk = aligned[first: first + size]
            try:
                latents.append(self.project(chunk, steps, [first_seed + first + i for i in range(len(chunk))],
                                            on_step, should_cancel))
            except BatchOutOfMemory as exc:
                if len(chunk) == 1:
                    raise DeviceOutOfMemory("one face does not fit in the GPU's memory (%s); the server needs a "
                                            "larger GPU or fewer other processes on it" % exc) from None
                size = len(chunk) // 2
                self.oom_ceiling = size
                log.warning("out of device memory at a batch of %d faces (%s); retrying %d at a time",
                            len(chunk), exc, size)
                continue
            first += len(chunk)
        return np.concatenate(latents)

    def synthesize(self, latents: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """uint8 [B, R, R, 3]; 1.0 = the blended model (Toonify), 0.0 = the FFHQ reconstruction."""
        with self._synthesis_lock:
            return self._toonifier.synthesize(np.asarray(latents, np.float32), strength)
