"""The functions RQ runs on a worker, by their import path. The worker installs its context (store, loaded
Toonify) once at start, so each job reuses the models already on the GPU."""
from __future__ import annotations

import logging
from typing import Any, List, Optional

import numpy as np

from stylegan2.styles import DEFAULT_STYLE

from .job import worker_lost_message
from .redis_store import RedisJobStore
from .results import read_latents
from .runner import WorkerContext, run_job

log = logging.getLogger("toonify.worker")


_context: Optional[WorkerContext[RedisJobStore]] = None


def install(context: WorkerContext[RedisJobStore]) -> None:
    global _context
    _context = context


def context() -> WorkerContext[RedisJobStore]:
    if _context is None:
        raise RuntimeError("toonify tasks run inside 'python -m app worker', which loads the models first")
    return _context


def process_job(job_id: str) -> str:
    """One delivery of a toonify job. A job that was cancelled, deleted or finished meanwhile is skipped."""
    ctx = context()
    job = ctx.store.claim(job_id, ctx.name)
    if job is None:
        return "skipped"
    log.info("job %s: attempt %d on %s", job_id, job.attempts, ctx.name)
    return run_job(job, ctx)


def render_faces(job_id: str, faces: List[int], strength: float, style: str) -> np.ndarray:
    """Re-render some faces of a succeeded job at another toon strength or in another style, in one synthesis:
    uint8 [len(faces), R, R, 3] (one round trip for a paste or an archive of every face)."""
    ctx = context()
    job = ctx.store.get(job_id)
    if job is None:
        raise LookupError("job %s is gone" % job_id)
    return ctx.toonify.synthesize(read_latents(ctx.store, job, faces), strength, style)


def render_face(job_id: str, face: int, strength: float, style: str = DEFAULT_STYLE) -> np.ndarray:
    """One face, uint8 [R, R, 3]: what an API of the previous release enqueues while workers are upgraded
    first (``style`` defaults for renders enqueued before styles existed)."""
    return render_faces(job_id, [face], strength, style)[0]


def job_failed(rq_job: Any, _connection: Any, exc_type: type, _exc: BaseException, _traceback: Any) -> None:
    """RQ's failure callback: a process_job run raised, or its worker died holding it (RQ's cleanup found
    the lease expired). If RQ will deliver it again the job shows as queued; otherwise it fails with a
    reason. Never raises: RQ's cleanup must go on to re-enqueue the job."""
    try:
        store = context().store
        if rq_job.retries_left:
            store.requeue(rq_job.id)
            return
        job = store.get(rq_job.id)
        if exc_type.__name__ == "AbandonedJobError":
            store.finish(rq_job.id, "failed", "worker_lost", worker_lost_message(job.attempts if job else 0))
        else:
            store.finish(rq_job.id, "failed", "internal_error", "toonification failed on the server; try again later")
    except Exception:
        log.exception("recording the failure of job %s failed", rq_job.id)
