"""The job store contract: what the API, the job runner and the workers call on a store, whichever holds the
jobs (app.jobs.sqlite_store for one machine, app.jobs.redis_store for the scaled-out service).

Left out on purpose, because only one store can have them: how a worker takes a job (SQLite's in-process
worker polls the table with ``claim_next``; RQ delivers a job id to a Redis worker, which calls ``claim``),
recovery after a crash (SQLite's ``requeue_interrupted``; Redis jobs are delivered again by RQ), the SQLite
store's files on disk (``data_dir``, ``space_reserve``, ``remove_orphans``) and Redis's worker presence and
re-render queue (``live_workers``, ``enqueue_render``). Code that needs those holds the concrete store."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from typing_extensions import Protocol

from .feed import ChangeFeed
from .job import IdempotencyKey, Job, JobCounts, NewJob
from .webhook_outbox import Outbox, Webhook


class JobStore(Protocol):
    changes: ChangeFeed  # every state change of a job, announced from the store's own write paths
    outbox: Outbox  # the webhook deliveries its state changes queued (app.jobs.webhook_outbox)

    # -- the job's life -------------------------------------------------------------------------------
    def reserve(self, job_id: str, limit: int) -> bool:
        """Hold one of ``limit`` places in the queue for a job about to be created; False when it is full."""

    def release(self, job_id: str) -> None:
        """Give back a reservation that did not become a job."""

    def create(self, job_id: str, new: NewJob, upload: bytes, idempotency: Optional[IdempotencyKey] = None) -> Job:
        """Turn the reservation into a queued job holding the upload, all or nothing — unless a job already
        answers the request (see find_reusable): then that job, and the caller releases its reservation. The
        check and the create are one atomic step, so concurrent identical creates make one job."""

    def get(self, job_id: str) -> Optional[Job]:
        """The job, or None when it is unknown, deleted or expired."""

    def find_reusable(self, cache_key: str, idempotency: Optional[IdempotencyKey] = None) -> Optional[Job]:
        """The job that already answers a create: the one its Idempotency-Key names while that job exists
        (IdempotencyConflict when the key came with another request), else a live job, or a succeeded one with
        its files, made from the same photo and projection options (the key then names it)."""

    def subscribe(self, job_id: str, webhook: Webhook) -> None:
        """``webhook`` receives the job's events from now on (kept with the job; a URL subscribed already
        gets the events added) and, in the same atomic step, the one its state implies already: ``start`` for
        a running job, ``completed`` for a finished one (a create answered by an earlier job)."""

    def progress(self, job_id: str, stage: str, step: Optional[int] = None, total: Optional[int] = None,
                 timings: Optional[Dict[str, float]] = None) -> None:
        """Record a running job's stage (and projection step; ``timings``: the seconds of each stage of this run
        so far, replacing the recorded ones); ignored once it is no longer running. A claim or a requeue
        clears the timings."""

    def publish_preview(self, job_id: str, preview: Dict[str, Any], files: Dict[str, bytes]) -> None:
        """A running job's latest live preview: its image files (overwriting the last ones), then its record on
        the job (app.jobs.previews.preview_record), which the view and the events show; nothing once the job is
        no longer running."""

    def finish(self, job_id: str, status: str, error_code: Optional[str] = None,
               error_message: Optional[str] = None) -> None:
        """End a job (succeeded or failed, with a reason); a cancelled job stays cancelled. The upload goes."""

    def requeue(self, job_id: str) -> None:
        """A running job goes back to the queue: the server, not the job, failed."""

    def cancel(self, job_id: str) -> Optional[Job]:
        """Cancel a queued or running job (its worker stops within a step); the job as it is now."""

    def is_cancelled(self, job_id: str) -> bool:
        """True when the job was cancelled or no longer exists: its worker should stop."""

    def delete(self, job_id: str) -> None:
        """Remove the job and its files."""

    def delete_files(self, job_id: str) -> None:
        """Remove the job's files, keeping its state."""

    def purge_expired(self, ttl_s: float, now: Optional[float] = None) -> List[str]:
        """Delete finished jobs older than ``ttl_s``; the ids deleted."""

    # -- files ----------------------------------------------------------------------------------------
    def write_file(self, job_id: str, name: str, data: bytes) -> None:
        """Store one of the job's files (the upload, a result) whole or not at all."""

    def read_file(self, job_id: str, name: str) -> Optional[bytes]:
        """One of the job's files, or None when it is not (or no longer) there."""

    def has_file(self, job_id: str, name: str) -> bool:
        """Whether one of the job's files is there, without reading it."""

    def keep_upload(self, job_id: str) -> None:
        """The upload becomes the result set's photo (PHOTO), moved, never written again: a photo is stored
        once. A job whose photo was kept already (a run after one that got that far) keeps it;
        FileNotFoundError when there is neither."""

    # -- the queue as a whole -------------------------------------------------------------------------
    def queue_depth(self) -> int:
        """Jobs queued or running."""

    def position(self, job: Job) -> int:
        """0 = running or next; n = n jobs ahead of it."""

    def recent_durations(self, limit: int = 20) -> List[float]:
        """Run times of the latest successful jobs, newest first (for ETAs and Retry-After)."""

    def count_job(self, worker: str, outcome: str, reason: str) -> None:
        """Count one finished job by worker, outcome and reason (the jobs metrics)."""

    def job_counts(self) -> JobCounts:
        """Finished jobs by (worker, outcome, reason), since the store was made."""
