"""``python -m app worker``: one GPU worker of the scaled-out service (``TOONIFY_QUEUE=redis``).

RQ's SimpleWorker runs each job in this process: no fork after the GPU is initialised, and the models load
once and stay loaded. A lease keeps RQ's visibility timeout short without capping job length: while a job
runs, a thread renews the job's entry in RQ's started-job registry (as RQ's own forking worker does from
its monitor), so a worker that dies is noticed within ``TOONIFY_WORKER_TTL_S`` and RQ's registry cleanup
delivers its job again. The same thread publishes this worker's presence, which /readyz counts.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any, Dict, Optional

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob
from rq.timeouts import UnixSignalDeathPenalty
from rq.utils import utcnow

from ..config import Settings
from ..errors import JobTimedOut
from ..metrics import Metrics
from ..toonify import Toonify
from .previews import PreviewPace
from .redis_store import JOBS_QUEUE, RENDER_QUEUE, WORKERS, RedisJobStore
from .rq_tasks import install
from .runner import WorkerContext

log = logging.getLogger("toonify.worker")


class JobDeadline(UnixSignalDeathPenalty):
    """RQ's job timeout, raised as a product error so the job fails with a reason a user can act on."""

    def handle_death_penalty(self, signum: int, frame: Any) -> None:
        raise JobTimedOut("the job ran longer than this server allows (%s s); try fewer steps" % self._timeout)


class Presence(threading.Thread):
    """Renews, every quarter TTL: this worker's presence key, and the lease of the job it is running."""

    def __init__(self, redis: Redis, name: str, info: Dict[str, Any], ttl_s: int) -> None:
        super().__init__(name="toonify-presence", daemon=True)
        self.redis, self.key, self.info, self.ttl_s = redis, WORKERS + name, dict(info, name=name), ttl_s
        self.worker: Optional[SimpleWorker] = None
        self.job: Optional[RQJob] = None
        self.stopping = threading.Event()

    def beat(self) -> None:
        job, worker = self.job, self.worker
        info = dict(self.info, job=job.id if job is not None else None, beat_at=time.time())
        self.redis.set(self.key, json.dumps(info), ex=self.ttl_s)
        if job is not None and worker is not None:
            job.heartbeat(utcnow(), self.ttl_s, xx=True)
            worker.heartbeat(self.ttl_s)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.beat()
            except Exception as exc:  # Redis away for a while: keep trying, RQ reconnects on its own
                log.warning("presence not renewed: %s", exc)
            self.stopping.wait(self.ttl_s / 4)

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.redis.delete(self.key)
        except Exception as exc:  # it expires by itself anyway
            log.warning("presence not removed: %s", exc)


class ToonifyWorker(SimpleWorker):
    death_penalty_class = JobDeadline

    def __init__(self, *args: Any, presence: Presence, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.presence = presence
        presence.worker = self

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """Registered and about to listen: only now does this worker count as live."""
        super().bootstrap(*args, **kwargs)
        self.presence.start()

    def get_heartbeat_ttl(self, job: RQJob) -> int:
        """The lease a job starts with; the presence thread renews it while the job runs."""
        return self.presence.ttl_s

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        self.presence.job = job
        try:
            super().execute_job(job, queue)
        finally:
            self.presence.job = None


def default_worker_name() -> str:
    return "%s.%d" % (socket.gethostname(), os.getpid())


def run_worker(settings: Settings, name: str, burst: bool = False, metrics_port: Optional[int] = None) -> int:
    """Load the models, then take jobs until stopped (SIGTERM: finish the current job first)."""
    store = RedisJobStore.from_settings(settings)
    redis = store.redis
    toonify = Toonify(settings).setup()
    log.info("worker %s: engine %s ready in %.1fs", name, toonify.engine, toonify.load_seconds)
    metrics = Metrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=metrics.registry)
    install(WorkerContext(store, toonify, metrics, name, PreviewPace(settings.preview_every_s)))
    ttl_s = max(4, settings.worker_ttl_s)
    presence = Presence(redis, name, {"engine": toonify.engine, "tiny": toonify.tiny, "models": toonify.model_files,
                                      "resolution": toonify.resolution, "host": socket.gethostname(),
                                      "pid": os.getpid(), "styles": toonify.styles.to_json()}, ttl_s)
    queues = [Queue(RENDER_QUEUE, connection=redis), Queue(JOBS_QUEUE, connection=redis)]
    # An idle RQ worker blocks on its queues for (its TTL - 15) s between maintenance passes, and maintenance
    # is what re-delivers the jobs of dead workers: pass every half TTL.
    worker = ToonifyWorker(queues, connection=redis, name=name, default_worker_ttl=ttl_s // 2 + 15,
                           maintenance_interval=max(1, ttl_s // 2), presence=presence)
    try:
        worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
    finally:
        presence.stop()
    return 0
