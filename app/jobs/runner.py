"""Run one job: project and render with the worker's Toonify object, with progress and cancellation, results
written to the job's folder. Shared by the in-process worker and the Redis workers."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Dict, Generic, List, Optional, Sequence, TypeVar

import numpy as np

from stylegan2.projection import StepInfo

from ..errors import ToonifyError
from ..faces.detect import Face
from ..memory import return_freed_memory
from ..metrics import Metrics
from ..storage import is_out_of_space, storage_full_from
from ..styles import stored_style
from ..toonify import Progress, ProjectionCancelled, Toonify
from .job import PHOTO, UPLOAD, AdmittedFace, Job
from .previews import JobPreviews, PreviewPace
from .results import write_results
from .store import JobStore

log = logging.getLogger("toonify.jobs")


StoreT = TypeVar("StoreT", bound=JobStore)


@dataclass(frozen=True)
class WorkerContext(Generic[StoreT]):
    """What a worker holds for every job it runs: its store (the protocol, or a store's own class where the
    worker takes jobs in that store's own way), its loaded Toonify, its metrics, its name, and its previews' pace
    (what it remembers of their costs from one job to the next)."""

    store: StoreT
    toonify: Toonify
    metrics: Metrics
    name: str
    previews: PreviewPace


class _JobProgress(Progress):
    """A job's stages and steps into its store record (what GET /jobs and the events show), with the seconds
    each stage took as the view's timings; stage times into the metrics; now and then a live preview
    (app.jobs.previews)."""

    def __init__(self, store: JobStore, job_id: str, metrics: Metrics, previews: JobPreviews) -> None:
        self.store, self.job_id, self.metrics, self.previews = store, job_id, metrics, previews
        self.seconds: Dict[str, float] = {}  # stage → seconds, summed over its spans (aligning: detect, align)
        self._current, self._since = "", time.monotonic()

    def _close(self) -> None:
        if self._current:
            spent = time.monotonic() - self._since
            self.seconds[self._current] = self.seconds.get(self._current, 0.0) + spent

    def stage(self, name: str) -> None:
        if name != self._current:
            self._close()
            self._current, self._since = name, time.monotonic()
        self.store.progress(self.job_id, name, timings=self.seconds)

    def done(self) -> None:
        """The last stage ended: its time is recorded too (before the job's outcome)."""
        self._close()
        self.store.progress(self.job_id, self._current, timings=self.seconds)
        self._current = ""

    def step(self, info: StepInfo) -> None:
        self.store.progress(self.job_id, "projecting", info.step, info.total)
        self.metrics.projection_steps.inc()

    def batch_step(self, first_face: int, info: StepInfo) -> None:
        self.previews.after_step(first_face, info)

    def timed(self, stage: str, seconds: float) -> None:
        self.metrics.stage_seconds.labels(stage).observe(seconds)


def detected_faces(admitted: Sequence[AdmittedFace]) -> List[Face]:
    """The faces admission chose, as the detector's own type: what the worker aligns with."""
    return [Face(list(face.rect), face.score, np.asarray(face.landmarks, dtype=np.float64)) for face in admitted]


def run_job(job: Job, worker: WorkerContext[JobStore], should_stop: Optional[Callable[[], bool]] = None) -> str:
    """Returns the job's outcome: succeeded, failed, cancelled or requeued. ``should_stop``: the worker is
    shutting down; the job stops between two projection steps and goes back to the queue. A full disk also
    re-queues the job (StorageFull is raised after, so the worker can wait for space). Errors that occur
    while recording the outcome propagate: the worker settles the job later."""
    store, toonify = worker.store, worker.toonify
    options = job.runnable_options()

    def stopping() -> bool:
        return bool(should_stop and should_stop())

    def cancelled() -> bool:
        return stopping() or store.is_cancelled(job.id)

    outcome, reason = "succeeded", ""
    out_of_space: Optional[BaseException] = None
    try:
        upload = store.read_file(job.id, UPLOAD)
        if upload is None:  # a run after one that kept the upload as the photo already
            upload = store.read_file(job.id, PHOTO)
        if upload is None:
            raise FileNotFoundError(UPLOAD)
        known = detected_faces(job.faces) or None
        style = stored_style(options)
        previews = JobPreviews(store, job.id, worker.previews, options.render_options.strength,
                               lambda latents, strength: toonify.synthesize(latents, strength, style))
        progress = _JobProgress(store, job.id, worker.metrics, previews)
        projection = toonify.project(upload, options.projection_options, progress, cancelled, known)
        rendering = toonify.render(projection, options.render_options, progress, keep_photo=False)
        if store.is_cancelled(job.id):  # a finished job is kept even when the server is stopping
            raise ProjectionCancelled()
        progress.stage("saving")
        write_results(store, job.id, projection, rendering, upload)
        progress.done()
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
