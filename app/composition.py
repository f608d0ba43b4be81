"""Which job store, queue and workers an API process uses (TOONIFY_QUEUE): the one place that chooses.

``local`` (the default): jobs in SQLite under the data dir, run by a worker thread in this process
(LocalService), which holds the data dir's lock (one process per folder). ``redis``: jobs in Redis,
delivered through RQ to ``python -m app worker`` processes on any machine (RedisService; the workers are
app.jobs.rq_worker)."""
from __future__ import annotations

from .config import Settings
from .faces.detect import FaceDetector
from .jobs.folder_lock import DataFolderLock
from .jobs.redis_store import RedisJobStore
from .jobs.sqlite_store import SqliteJobStore
from .service import LocalService, RedisService, Service
from .toonify import Toonify


def create_service(settings: Settings) -> Service:
    detector = FaceDetector(settings.models_dir)  # one per process: admission and the local worker share it
    if settings.queue == "redis":
        store = RedisJobStore.from_settings(settings, timeout_s=settings.redis_timeout_s)
        return RedisService(settings, store, detector)
    folder_lock = DataFolderLock.acquire(settings.data_dir, settings.port)  # before the store touches a job
    store = SqliteJobStore(settings.data_dir, settings.webhook_progress_interval_s)
    return LocalService(settings, store, Toonify(settings, detector), detector, folder_lock)
