"""What one service process holds: settings, job store, metrics, face detector, the engine (loaded in the
background so liveness answers at once), and the worker."""
from __future__ import annotations

import logging
import threading
from typing import Optional

from ..config import Settings
from ..engine import Engine
from ..faces import FaceDetector
from ..imaging import ImageLimits
from ..jobs.local import LocalWorker
from ..jobs.store import JobStore
from ..metrics import Metrics

log = logging.getLogger("toonify")


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        self.store = JobStore(settings.data_dir)
        requeued = self.store.requeue_interrupted(settings.job_attempts)
        if requeued:
            log.info("jobs interrupted by the last stop: %s", ", ".join(requeued))
        self.detector = FaceDetector(settings.models_dir)
        self.engine: Optional[Engine] = None
        self.engine_error: Optional[str] = None
        self.worker = LocalWorker(self.store, lambda: self.engine, self.detector, self.limits, self.metrics,
                                  settings.batch_size)
        self._loader = threading.Thread(target=self._load_engine, name="toonify-engine-loader", daemon=True)

    def start(self) -> None:
        self._loader.start()
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _load_engine(self) -> None:
        try:
            self.engine = Engine(self.settings.engine, self.settings.models_dir)
            log.info("engine %s ready in %.1fs", self.settings.engine, self.engine.load_seconds)
            self.worker.wake.set()
        except Exception as exc:  # readiness reports it; the process stays up for ops to see why
            log.exception("loading the models failed")
            self.engine_error = "%s: %s" % (type(exc).__name__, exc)
