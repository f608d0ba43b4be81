"""Run one job: the pipeline with progress and cancellation, results written to the job's folder. Shared
by the in-process worker and the Redis workers."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Optional, Union

from ..engine import Engine, ProjectionCancelled
from ..errors import ToonifyError
from ..faces import Face, FaceDetector
from ..imaging import ImageLimits
from ..metrics import Metrics
from ..pipeline import ToonifyOptions, toonify
from .job import UPLOAD, Job
from .results import write_results
from .store import JobStore

if TYPE_CHECKING:
    from .redis_store import RedisJobStore

AnyStore = Union[JobStore, "RedisJobStore"]

log = logging.getLogger("toonify.jobs")


def run_job(job: Job, store: AnyStore, engine: Engine, detector: FaceDetector, limits: ImageLimits,
            metrics: Metrics, batch_size: int, worker: str,
            externally_cancelled: Optional[Callable[[], bool]] = None) -> str:
    """Returns the job's outcome: succeeded, failed or cancelled."""
    options = ToonifyOptions(**job.options)

    def cancelled() -> bool:
        return store.is_cancelled(job.id) or bool(externally_cancelled and externally_cancelled())

    def on_stage(stage: str, seconds: float) -> None:
        metrics.stage_seconds.labels(stage).observe(seconds)
        store.progress(job.id, {"decode": "aligning", "detect": "aligning", "align": "projecting",
                                "project": "synthesizing", "synthesize": "pasting"}.get(stage, stage))

    def on_step(step: int, total: int, _losses) -> None:
        store.progress(job.id, "projecting", step, total)

    outcome, reason = "succeeded", ""
    try:
        upload = store.read_file(job.id, UPLOAD)
        if upload is None:
            raise FileNotFoundError(UPLOAD)
        store.progress(job.id, "decoding")
        known = [Face.from_json(face) for face in job.faces] or None
        result = toonify(engine, detector, upload, options, limits, on_stage, on_step, cancelled, batch_size, known)
        if cancelled():
            raise ProjectionCancelled()
        write_results(store, job.id, result, upload)
        store.finish(job.id, "succeeded")
    except ProjectionCancelled:
        outcome, reason = "cancelled", "cancelled"
        store.delete_files(job.id)
    except ToonifyError as exc:
        outcome, reason = "failed", exc.code
        store.finish(job.id, "failed", exc.code, exc.message)
    except FileNotFoundError:
        outcome, reason = "failed", "upload_missing"
        store.finish(job.id, "failed", "upload_missing", "the uploaded photo is gone; send it again")
    except Exception:  # the job fails with a reason; the worker lives on
        log.exception("job %s failed", job.id)
        outcome, reason = "failed", "internal_error"
        store.finish(job.id, "failed", "internal_error", "toonification failed on the server; try again later")
    if store.is_cancelled(job.id):
        store.delete_files(job.id)
        outcome, reason = "cancelled", "cancelled"
    store.count_job(worker, outcome, reason)
    return outcome
