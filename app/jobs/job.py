"""What a job is, whichever store holds it."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

TERMINAL = ("succeeded", "failed", "cancelled")
UPLOAD = "upload.bin"
PREVIEW_PREFIX = "preview_"  # live previews' files (app.jobs.previews), deleted when the job ends
PREVIEW_FILES = PREVIEW_PREFIX + "*.jpg"
PHOTO = "photo.bin"  # the upload, kept with the results: re-pasting at another strength needs it
LATENTS = "latents.npy"
RESERVATION_TTL_S = 300  # a queue place held for an upload being checked lapses after this
JobCounts = Dict[Tuple[str, str, str], int]  # (worker, outcome, reason) → finished jobs


@dataclass
class Job:
    id: str
    status: str
    stage: str
    step: int
    total: int
    options: Dict[str, Any]
    cache_key: str
    faces: List[Dict[str, Any]]
    attempts: int
    error_code: Optional[str]
    error_message: Optional[str]
    worker: Optional[str]
    created_at: float
    started_at: Optional[float]
    updated_at: float
    finished_at: Optional[float]
    timings: Dict[str, float] = field(default_factory=dict)  # stage → seconds, of the latest run
    preview: Optional[Dict[str, Any]] = None  # the latest live preview while running (app.jobs.previews)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's Idempotency-Key (per owner) with the fingerprint of the request that sent it: a retry with the
    same fingerprint gets the first try's job; another request with the key is refused."""

    owner: str
    key: str
    fingerprint: str


def new_job_id() -> str:
    """128 random bits, URL-safe: unguessable."""
    return secrets.token_urlsafe(16)


def worker_lost_message(attempts: int) -> str:
    return ("the job was interrupted %d times (workers or servers stopped while running it); send the photo again"
            % attempts)
