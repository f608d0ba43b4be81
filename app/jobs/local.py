"""The embedded worker: a thread in the API process that runs queued jobs off the event loop. Nothing a job
or the store raises ends the loop: the job is settled (failed with a reason, or back in the queue) and the
worker backs off and goes on. app.jobs.supervisor restarts the thread should it end anyway."""
from __future__ import annotations

import logging
import socket
import threading
from typing import Dict, Optional

from ..metrics import Metrics
from ..storage import free_bytes, is_out_of_space
from ..toonify import Toonify
from .job import Job
from .previews import PreviewPace
from .runner import WorkerContext, run_job
from .sqlite_store import SqliteJobStore

log = logging.getLogger("toonify.worker")
IDLE_WAIT_S = 0.5
MAX_BACKOFF_S = 8.0
INTERNAL_ERROR = "toonification failed on the server; try again later"


class LocalWorker(threading.Thread):
    def __init__(self, store: SqliteJobStore, toonify: Toonify, metrics: Metrics, min_free_bytes: int = 0) -> None:
        """Jobs wait until ``toonify`` is set up (the service loads it in the background)."""
        super().__init__(name="toonify-worker", daemon=True)
        self.context = WorkerContext(store, toonify, metrics, "%s-local" % socket.gethostname(),
                                     PreviewPace(toonify.settings.preview_every_s))
        self.min_free_bytes = min_free_bytes
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._claiming = threading.Lock()  # held while a job is taken: once stop() returns, none is
        self.unsettled: Dict[str, BaseException] = {}  # jobs whose end could not be recorded yet
        self.failures = 0  # consecutive turns that raised
        self.last_error: Optional[str] = None

    @property
    def store(self) -> SqliteJobStore:
        return self.context.store

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                worked = self._turn()
                self.failures = 0
            except Exception as exc:  # the loop survives; _turn has logged it with the job id
                self.failures += 1
                self.last_error = "%s: %s" % (type(exc).__name__, exc)
                worked = False
            if not worked:
                self.wake.wait(min(MAX_BACKOFF_S, IDLE_WAIT_S * 2 ** self.failures) if self.failures else IDLE_WAIT_S)
                self.wake.clear()

    def _turn(self) -> bool:
        """Settle what is pending, then run one job; False when there was nothing to do."""
        for job_id, exc in list(self.unsettled.items()):
            self._settle(job_id, exc)
        if not self.context.toonify.ready or not self._room_for_results():
            return False
        with self._claiming:
            job = None if self.stopping.is_set() else self.store.claim_next(self.context.name)
        if job is None:
            return False
        self._run(job)
        return True

    def _room_for_results(self) -> bool:
        """Admitted jobs still run while the free space is above half the admission floor."""
        self.store.space_reserve.ensure()
        return self.min_free_bytes <= 0 or free_bytes(self.store.data_dir) >= self.min_free_bytes // 2

    def _run(self, job: Job) -> None:
        try:
            run_job(job, self.context, should_stop=self.stopping.is_set)
        except Exception as exc:
            if is_out_of_space(exc):
                log.warning("job %s: waiting for disk space (%s)", job.id, exc)
            else:
                log.exception("job %s: the worker caught an error", job.id)
            self._settle(job.id, exc)
            raise

    def _settle(self, job_id: str, exc: BaseException) -> None:
        """A job that ended in an error the runner could not record: back to the queue when the disk was
        full (not the job's fault), else failed. Retried on later turns while the store refuses."""
        try:
            if is_out_of_space(exc):
                self.store.requeue(job_id)
            else:
                self.store.finish(job_id, "failed", "internal_error", INTERNAL_ERROR)
                self.store.count_job(self.context.name, "failed", "internal_error")
            self.unsettled.pop(job_id, None)
        except Exception as again:
            if job_id not in self.unsettled:
                log.warning("job %s: its outcome cannot be recorded yet (%s); retrying", job_id, again)
            self.unsettled[job_id] = exc

    def stop(self) -> None:
        """No job is taken from now on; the running job stops between two projection steps and goes back to
        the queue."""
        with self._claiming:
            self.stopping.set()
        self.wake.set()
