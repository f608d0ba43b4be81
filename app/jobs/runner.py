"""Run one job: project and render with the worker's Toonify object, with progress and cancellation, results
written to the job's folder. Shared by the in-process worker and the Redis workers."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from stylegan2.projection import StepInfo

from ..errors import ToonifyError
from ..faces.detect import Face
from ..memory import return_freed_memory
from ..metrics import Metrics
from ..options import RequestOptions
from ..storage import is_out_of_space, storage_full_from
from ..toonify import ProjectionCancelled, Toonify
from .job import UPLOAD, Job
from .results import write_results
from .store import JobStore

log = logging.getLogger("toonify.jobs")


@dataclass(frozen=True)
class WorkerContext:
    """What a worker holds for every job it runs: its store, its loaded Toonify, its metrics, its name."""

    store: JobStore
    toonify: Toonify
    metrics: Metrics
    name: str


def _observe(metrics: Metrics, seconds: Dict[str, float]) -> None:
    for stage, took in seconds.items():
        metrics.stage_seconds.labels(stage).observe(took)


def run_job(job: Job, worker: WorkerContext, should_stop: Optional[Callable[[], bool]] = None) -> str:
    """Returns the job's outcome: succeeded, failed, cancelled or requeued. ``should_stop``: the worker is
    shutting down; the job stops between two projection steps and goes back to the queue. A full disk also
    re-queues the job (StorageFull is raised after, so the worker can wait for space). Errors that occur
    while recording the outcome propagate: the worker settles the job later."""
    store, toonify = worker.store, worker.toonify
    options = RequestOptions(**job.options)

    def stopping() -> bool:
        return bool(should_stop and should_stop())

    def cancelled() -> bool:
        return stopping() or store.is_cancelled(job.id)

    def progress(stage: str, step: Optional[StepInfo]) -> None:
        if step is None:
            store.progress(job.id, stage)
        else:
            store.progress(job.id, stage, step.step, step.total)

    outcome, reason = "succeeded", ""
    out_of_space: Optional[BaseException] = None
    try:
        upload = store.read_file(job.id, UPLOAD)
        if upload is None:
            raise FileNotFoundError(UPLOAD)
        known = [Face.from_json(face) for face in job.faces] or None
        projection = toonify.project(upload, options.projection, progress, cancelled, known)
        _observe(worker.metrics, projection.stage_seconds)
        rendering = toonify.render(projection, options.rendering, progress)
        _observe(worker.metrics, rendering.stage_seconds)
        if store.is_cancelled(job.id):  # a finished job is kept even when the server is stopping
            raise ProjectionCancelled()
        write_results(store, job.id, projection, rendering, upload)
        store.finish(job.id, "succeeded")
    except ProjectionCancelled:
        outcome, reason = "cancelled", "cancelled"
    except ToonifyError as exc:
        outcome, reason = "failed", exc.code
        store.finish(job.id, "failed", exc.code, exc.message)
    except FileNotFoundError:
        outcome, reason = "failed", "upload_missing"
        store.finish(job.id, "failed", "upload_missing", "the uploaded photo is gone; send it again")
    except Exception as exc:  # the job fails with a reason (or waits for disk space); the worker lives on
        if is_out_of_space(exc):  # the worker logs it, and waits for space
            outcome, reason, out_of_space = "requeued", "storage_full", exc
        else:
            log.exception("job %s failed", job.id)
            outcome, reason = "failed", "internal_error"
            store.finish(job.id, "failed", "internal_error", "toonification failed on the server; try again later")
    if store.is_cancelled(job.id):
        outcome, reason = "cancelled", "cancelled"
    elif outcome == "requeued" or (outcome == "cancelled" and stopping()):
        outcome, reason = "requeued", reason or "shutdown"
        store.requeue(job.id)
    if outcome == "cancelled":
        store.delete_files(job.id)
    if outcome != "requeued":
        store.count_job(worker.name, outcome, reason)
    return_freed_memory()  # the job's full-size photo and arrays: back to the system, not kept per thread
    if out_of_space is not None:
        raise storage_full_from(out_of_space)
    return outcome
