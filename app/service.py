"""What one API process holds: settings, job store, metrics, face detector, and how jobs get run. No HTTP
here: conditions are typed errors (app.errors), which app.api answers; app.composition picks the service.

``LocalService``: SQLite + an in-process worker; the models load in a background thread so liveness
answers at once. ``RedisService``: jobs go through Redis to ``python -m app worker`` processes on any
machine; this process loads no models and does no GPU work (re-renders run on a worker too)."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from rq.job import JobStatus as RQStatus
from starlette.concurrency import run_in_threadpool

from stylegan2.timings import summary

from .config import Settings
from .errors import InternalError, ModelsFailed, NotReady, ShuttingDown
from .faces.decode import ImageLimits
from .faces.detect import FaceDetector
from .jobs.folder_lock import DataFolderLock
from .jobs.job import IdempotencyKey, Job, NewJob
from .jobs.local import LocalWorker
from .jobs.redis_store import REDIS_DOWN, RedisJobStore
from .jobs.results import read_latents
from .jobs.sqlite_store import SqliteJobStore
from .jobs.store import JobStore
from .jobs.supervisor import WorkerSupervisor
from .metrics import Metrics
from .storage import StorageFull, check_free_space
from .styles import DEFAULT_CATALOG, StyleCatalog
from .toonify import Toonify

log = logging.getLogger("toonify")
RENDER_WAIT_S = 120
TINY_WARNING = ("these are tiny random TEST models (make-tiny): results are noise, not faces; run preload.sh for the "
                "real weights")
Readiness = Tuple[bool, Dict[str, Any]]


class Service:
    """What the API asks of either service: take jobs, re-render faces, say whether it is ready."""

    store: JobStore

    def __init__(self, settings: Settings, detector: FaceDetector) -> None:
        """``detector``: finds faces when a job is admitted (shared with the local worker's Toonify)."""
        self.settings = settings
        self.metrics = Metrics()
        self.limits = ImageLimits.from_settings(settings)
        self.detector = detector

        self.draining = threading.Event()  # SIGTERM received: waiting requests answer, no new jobs

    def start(self) -> None:
        """Start background work (called once the event loop runs)."""

    def begin_shutdown(self) -> None:
        """Called on SIGTERM, before the server waits for open connections: waiting requests answer now."""
        self.draining.set()

    def stop(self) -> None:
        """Stop background work."""

    def submit(self, job_id: str, new: NewJob, upload: bytes, idempotency: Optional[IdempotencyKey] = None) -> Job:
        """The reserved job, created (JobStore.create) — or the job that already answers the request."""
        raise NotImplementedError

    def check_accepting(self) -> None:
        """Raise ShuttingDown, NotReady or StorageFull when new jobs cannot be taken now."""
        if self.draining.is_set():
            raise ShuttingDown("the server is restarting; try again shortly", retry_after_s=10)

    async def render(self, job: Job, faces: List[int], strength: float, style: str) -> np.ndarray:
        """Some faces of a succeeded job in ``style`` at ``strength``, from their latents, in one synthesis (one
        round trip in Redis mode): uint8 [len(faces), R, R, 3]. The caller has checked the job and the faces
        (app.rendering.check_result: a clear 409 or 404, not a failed task on a worker)."""
        raise NotImplementedError

    def style_catalog(self) -> StyleCatalog:
        """The styles jobs can be rendered in (blocking in redis mode: run it in a thread)."""
        return DEFAULT_CATALOG

    def readiness(self) -> Readiness:
        raise NotImplementedError

    @property
    def models_problem(self) -> Optional[str]:
        """Why this process's models cannot serve (missing, or failed to load), for /readyz, the 503s and the
        page; None while they load, once they are loaded, and where the workers hold them (redis)."""
        return None

    @property
    def models_loading(self) -> bool:
        return False

    def refresh_gauges(self) -> None:
        self.metrics.queue_depth.set(self.store.queue_depth())


class LocalService(Service):
    store: SqliteJobStore

    def __init__(self, settings: Settings, store: SqliteJobStore, toonify: Toonify, detector: FaceDetector,
                 folder_lock: DataFolderLock) -> None:
        """``toonify``: what the worker thread runs jobs with; set up in the background by start().
        ``folder_lock``: the data folder's, held as long as this process lives: the running jobs recovered
        below are this process's to recover, never another one's."""
        super().__init__(settings, detector)
        self.store, self.toonify, self.folder_lock = store, toonify, folder_lock
        self.metrics.count_jobs_from(self.store.job_counts)
        requeued = self.store.requeue_interrupted(settings.job_attempts)
        if requeued:
            log.info("jobs interrupted by the last stop: %s", ", ".join(requeued))
        self.load_error: Optional[str] = toonify.missing_models()
        self.workers = WorkerSupervisor(self._new_worker,
                                        lambda: self.store.requeue_interrupted(settings.job_attempts))
        self._loader = threading.Thread(target=self._load_models, name="toonify-model-loader", daemon=True)

    def _new_worker(self) -> LocalWorker:
        return LocalWorker(self.store, self.toonify, self.metrics, self.settings.min_free_bytes)

    def start(self) -> None:
        if self.load_error is None:
            self._loader.start()
        else:
            log.error("%s", self.load_error)
        self.workers.start()

    def begin_shutdown(self) -> None:
        super().begin_shutdown()
        self.workers.begin_stop()  # no job starts, no worker restarts; the running one goes back to the queue

    def stop(self) -> None:
        if not self.workers.stop(self.settings.shutdown_timeout_s / 2):
            log.warning("the worker did not stop within %.0f s; its job is re-queued at the next start",
                        self.settings.shutdown_timeout_s / 2)

    def _load_models(self) -> None:
        try:
            self.toonify.setup()
            log.info("engine %s ready in %.1fs (%s)", self.settings.engine, self.toonify.load_seconds,
                     summary(self.toonify.load_phases))
            self.workers.wake()
        except Exception as exc:  # readiness says why (without paths or tracebacks: it is public); the log has all
            log.exception("loading the models failed")
            self.load_error = self.toonify.load_failure(exc)

    @property
    def models_problem(self) -> Optional[str]:
        return self.load_error

    @property
    def models_loading(self) -> bool:
        return self.load_error is None and not self.toonify.ready

    def submit(self, job_id: str, new: NewJob, upload: bytes, idempotency: Optional[IdempotencyKey] = None) -> Job:
        check_free_space(self.settings.data_dir, self.settings.min_free_bytes)
        job = self.store.create(job_id, new, upload, idempotency)
        self.workers.wake()
        return job

    def _loaded_toonify(self) -> Toonify:
        if self.toonify.ready:
            return self.toonify
        if self.load_error is not None:
            raise ModelsFailed(self.load_error)
        raise NotReady("the service is still loading its models; try again shortly", retry_after_s=10)

    def check_accepting(self) -> None:
        super().check_accepting()
        self._loaded_toonify()
        alive, reason = self.workers.alive()
        if not alive:
            raise NotReady(reason + "; try again shortly", retry_after_s=5)
        check_free_space(self.settings.data_dir, self.settings.min_free_bytes)

    async def render(self, job: Job, faces: List[int], strength: float, style: str) -> np.ndarray:
        toonify = self._loaded_toonify()
        latents = await run_in_threadpool(read_latents, self.store, job, faces)
        return await run_in_threadpool(toonify.synthesize, latents, strength, style)

    def style_catalog(self) -> StyleCatalog:
        return self.toonify.styles

    def readiness(self) -> Readiness:
        toonify = self.toonify
        if not toonify.ready:
            return False, {"ready": False, "reason": self.load_error or "loading the models"}
        alive, reason = self.workers.alive()
        if not alive:
            return False, {"ready": False, "queue": "local", "reason": reason}
        try:
            check_free_space(self.settings.data_dir, self.settings.min_free_bytes)
        except StorageFull as exc:
            return False, {"ready": False, "queue": "local", "reason": exc.message}
        body = {"ready": True, "queue": "local", "engine": toonify.engine, "models": toonify.model_files,
                "resolution": toonify.resolution, "load_seconds": round(toonify.load_seconds, 2),
                "queue_depth": self.store.queue_depth()}
        if toonify.tiny:
            body["warning"] = TINY_WARNING
        return True, body


class RedisService(Service):
    store: RedisJobStore

    def __init__(self, settings: Settings, store: RedisJobStore, detector: FaceDetector) -> None:
        super().__init__(settings, detector)
        self.store = store
        self.redis = store.redis
        self.metrics.count_jobs_from(self.store.job_counts)

    def submit(self, job_id: str, new: NewJob, upload: bytes, idempotency: Optional[IdempotencyKey] = None) -> Job:
        return self.store.create(job_id, new, upload, idempotency)

    async def render(self, job: Job, faces: List[int], strength: float, style: str) -> np.ndarray:
        task = await run_in_threadpool(self.store.enqueue_render, job.id, faces, strength, style, RENDER_WAIT_S)
        deadline = time.monotonic() + RENDER_WAIT_S
        while time.monotonic() < deadline:
            status = await run_in_threadpool(task.get_status, True)
            if status == RQStatus.FINISHED:
                return await run_in_threadpool(task.return_value, True)
            if status in (RQStatus.FAILED, RQStatus.CANCELED, RQStatus.STOPPED):
                raise InternalError("re-rendering failed on the worker; try again later")
            await asyncio.sleep(0.05)
        raise NotReady("no worker was free to re-render within %d s; try again" % RENDER_WAIT_S, retry_after_s=30)

    def style_catalog(self) -> StyleCatalog:
        """What the live workers render (the API loads no models): the first worker's list that names styles;
        workers of one deployment share one models folder."""
        try:
            workers = self.store.live_workers()
        except REDIS_DOWN:
            return DEFAULT_CATALOG
        catalogs = [StyleCatalog.from_json(w["styles"]) for w in workers if isinstance(w.get("styles"), dict)]
        return catalogs[0] if catalogs else DEFAULT_CATALOG

    def refresh_gauges(self) -> None:
        super().refresh_gauges()
        self.metrics.live_workers.set(len(self.store.live_workers()))

    def readiness(self) -> Readiness:
        try:
            workers = self.store.live_workers()
            depth = self.store.queue_depth()
        except REDIS_DOWN as exc:
            return False, {"ready": False, "queue": "redis", "reason": "Redis cannot be reached: %s" % exc}
        # public endpoint: no job ids (they are the keys to users' results), hosts or pids
        listed = [{"name": w["name"], "engine": w["engine"], "busy": w["job"] is not None} for w in workers]
        body: Dict[str, Any] = {"queue": "redis", "queue_depth": depth, "workers": listed}
        if not workers:
            body.update(ready=False, reason="no live worker: start one with 'python -m app worker' "
                                            "(docker compose --profile scale up --scale worker=N)")
            return False, body
        body["ready"] = True
        if any(worker.get("tiny") for worker in workers):
            body["warning"] = TINY_WARNING
        return True, body
