"""What a job is, whichever store holds it: a typed record that each store maps from its rows once
(app.jobs.sqlite_store, app.jobs.redis_store), so no code after the store re-parses options or splits keys."""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence, Tuple

from pydantic import ValidationError

from ..options import ToonifyOptions
from .webhook_outbox import Webhook

UPLOAD = "upload.bin"
PREVIEW_PREFIX = "preview_"  # live previews' files (app.jobs.previews), deleted when the job ends
PREVIEW_FILES = PREVIEW_PREFIX + "*.jpg"
PHOTO = "photo.bin"  # the upload, kept with the results: re-pasting at another strength needs it
LATENTS = "latents.npy"
RESERVATION_TTL_S = 300  # a queue place held for an upload being checked lapses after this
JobCounts = Dict[Tuple[str, str, str], int]  # (worker, outcome, reason) → finished jobs


class JobStatus(str, Enum):
    """A job's state. Its values are the strings the stores hold and the API answers, and a member equals its
    string (``JobStatus.QUEUED == "queued"``), so stored rows and SQL/Lua comparisons stay as they were."""

    RESERVED = "reserved"  # a queue place held while an upload is checked: not a job yet, never shown
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:  # "queued", not "JobStatus.QUEUED", in messages (Python 3.7 and 3.11 alike)
        return str(self.value)


TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class AdmittedFace:
    """A face admission chose: its box (left, top, right, bottom) and detector score, and its 68 landmarks, in
    photo pixels. The worker aligns with these instead of detecting again."""

    rect: Tuple[int, int, int, int]
    score: float
    landmarks: Tuple[Tuple[float, float], ...]

    @classmethod
    def found(cls, rect: Sequence[Any], score: float, landmarks: Sequence[Sequence[Any]]) -> "AdmittedFace":
        """From a detection (numbers of any kind), rounded as stored: what the job says is what it keeps."""
        left, top, right, bottom = (int(v) for v in rect)
        return cls((left, top, right, bottom), round(float(score), 4),
                   tuple((round(float(x), 2), round(float(y), 2)) for x, y in landmarks))

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "AdmittedFace":
        return cls.found(data["rect"], data["score"], data.get("landmarks", ()))

    def to_json(self) -> Dict[str, Any]:
        return {"rect": list(self.rect), "score": self.score, "landmarks": [list(point) for point in self.landmarks]}


def options_from_json(text: str) -> Tuple[ToonifyOptions, Optional[str]]:
    """A job's stored options, validated once here, and why they cannot be read (None: they can). A job stored
    by a newer or a broken version keeps its row; it shows the default options and fails when a worker takes it
    (``Job.runnable_options``)."""
    try:
        return ToonifyOptions.model_validate(json.loads(text)), None
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = "%s: %s" % (".".join(str(part) for part in first["loc"]) or "options", first["msg"])
    except ValueError as exc:  # not JSON
        reason = str(exc)
    return ToonifyOptions(), "its options cannot be read by this version (%s)" % reason


@dataclass(frozen=True)
class NewJob:
    """What a create records: whose job it is, its options, the cache key an identical request finds it by, the
    faces admission chose, and the webhook it asked for (subscribed in the create's own transaction, also to
    the job that answers it instead, so a create that got an answer has its subscription)."""

    owner: str
    options: ToonifyOptions
    cache_key: str
    faces: List[AdmittedFace]
    webhook: Optional[Webhook] = None

    def faces_json(self) -> str:
        """The faces as a store holds them (what ``Job.stored`` reads)."""
        return json.dumps([face.to_json() for face in self.faces])


@dataclass
class Job:
    id: str
    owner: str  # the tenant (API key id) that created it; NO_OWNER ("") on a server without keys
    status: JobStatus
    stage: str
    step: int
    total: int
    options: ToonifyOptions  # as the create asked, each field validated
    cache_key: str
    faces: List[AdmittedFace]  # chosen at admission, largest first
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
    unreadable: Optional[str] = None  # why this version cannot run the stored job (options_from_json)

    @classmethod
    def stored(cls, job_id: str, fields: Dict[str, Any]) -> "Job":
        """The one mapping from what a store holds to a Job: ``fields`` has every other field by name, options,
        faces, timings and preview as JSON text. A job stored before jobs recorded their owner has none (None):
        its owner is the first field of its cache key (``owner;photo hash;projection options``, as the API has
        always built it)."""
        rest = dict(fields)
        owner, options, preview = rest.pop("owner"), rest.pop("options"), rest.pop("preview")
        typed_options, unreadable = options_from_json(options)
        return cls(id=job_id, owner=rest["cache_key"].split(";", 1)[0] if owner is None else owner,
                   status=JobStatus(rest.pop("status")), options=typed_options,
                   faces=[AdmittedFace.from_json(face) for face in json.loads(rest.pop("faces"))],
                   timings=json.loads(rest.pop("timings")), preview=json.loads(preview) if preview else None,
                   unreadable=unreadable, **rest)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def runnable_options(self) -> ToonifyOptions:
        """The options to run the job with; a ValueError for a job this version cannot read (the worker logs it
        with the job's id and fails the job)."""
        if self.unreadable is not None:
            raise ValueError(self.unreadable)
        return self.options


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
