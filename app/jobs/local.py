"""The embedded worker: a thread in the API process that runs queued jobs off the event loop."""
from __future__ import annotations

import logging
import socket
import threading
from typing import Callable, Optional

from ..engine import Engine
from ..faces import FaceDetector
from ..imaging import ImageLimits
from ..metrics import Metrics
from .runner import run_job
from .store import JobStore

log = logging.getLogger("toonify.worker")


class LocalWorker(threading.Thread):
    def __init__(self, store: JobStore, engine: Callable[[], Optional[Engine]], detector: FaceDetector,
                 limits: ImageLimits, metrics: Metrics, batch_size: int) -> None:
        super().__init__(name="toonify-worker", daemon=True)
        self.store, self.engine, self.detector = store, engine, detector
        self.limits, self.metrics, self.batch_size = limits, metrics, batch_size
        self.name_label = "%s-local" % socket.gethostname()
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            engine = self.engine()
            job = self.store.claim_next(self.name_label) if engine is not None else None
            if job is None:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            run_job(job, self.store, engine, self.detector, self.limits, self.metrics, self.batch_size,
                    self.name_label)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
