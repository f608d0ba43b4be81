"""Accepting an upload as a job: a queue slot is reserved (atomically, in the store) before any decoding or
detection, decodes run a bounded number at a time, at reduced size, and a job carries a bounded number of faces.

Memory per decode: a photo is decoded once at full size only when its format cannot be decoded smaller
(everything but JPEG), then reduced to the detector's working size. DECODE_BYTES_PER_PIXEL is the measured
worst case of that step (bench/RESULTS.md, "Hostile traffic"); TOONIFY_DECODE_MEMORY_MB / that cost at the
pixel limit gives how many decodes may run at once.
"""
from __future__ import annotations

import asyncio
import math
import statistics
from typing import List, Optional

from fastapi.concurrency import run_in_threadpool

from ..config import Settings
from ..errors import TooManyFaces
from ..faces import LARGE_PHOTO_SIDE, Face
from ..imaging import decode_reduced
from ..jobs.job import Job, new_job_id
from ..pipeline import ToonifyOptions, select_faces
from .errors import ApiError
from .state import Service

DECODE_BYTES_PER_PIXEL = 10  # PIL's 4-byte RGB(X) image + the decoder's own buffer + an EXIF-rotated copy


def decode_slots(settings: Settings) -> int:
    """How many uploads may be decoded at once within the memory budget (at least one)."""
    per_decode = settings.max_pixels * DECODE_BYTES_PER_PIXEL
    return max(1, int(settings.decode_memory_mb * 1_000_000 // per_decode))


def scale_face(face: Face, scale: float) -> Face:
    """A face found on a copy reduced by ``scale``, in photo coordinates (boxes rounded outwards)."""
    if scale == 1.0:
        return face
    rect = [int(math.floor(face.rect[0] / scale)), int(math.floor(face.rect[1] / scale)),
            int(math.ceil(face.rect[2] / scale)), int(math.ceil(face.rect[3] / scale))]
    return Face(rect, face.score, face.landmarks / scale)


def _faces_of(svc: Service, data: bytes, choice: str) -> List[Face]:
    reduced, scale = decode_reduced(data, LARGE_PHOTO_SIDE, svc.limits)
    faces = select_faces(svc.detector.usable_faces(reduced), choice)
    if len(faces) > svc.settings.max_faces:
        raise TooManyFaces("the photo has %d faces; one job toonifies at most %d — pick one with face=<index> "
                           "(0 is the largest) or crop the photo" % (len(faces), svc.settings.max_faces))
    return [scale_face(face, scale) for face in faces]


async def queue_full(svc: Service) -> ApiError:
    durations = await run_in_threadpool(svc.store.recent_durations)
    retry = max(1, int(statistics.median(durations or [30.0])))
    return ApiError("queue_full", "the queue is full (%d jobs at most); try again in %d s"
                    % (svc.settings.max_queue, retry), {"Retry-After": str(retry)})


async def admit(svc: Service, slots: asyncio.Semaphore, options: ToonifyOptions, cache_key: str,
                data: bytes) -> Job:
    """Reserve a place in the queue, then find the faces, then turn the reservation into the job. Any
    failure on the way gives the place back."""
    job_id = new_job_id()
    if not await run_in_threadpool(svc.store.reserve, job_id, svc.settings.max_queue):
        raise await queue_full(svc)
    created: Optional[Job] = None
    try:
        async with slots:
            faces = await run_in_threadpool(_faces_of, svc, data, options.face)
        created = await run_in_threadpool(svc.submit, job_id, options.model_dump(), cache_key,
                                          [face.to_json() for face in faces], data)
        return created
    finally:
        if created is None:
            await run_in_threadpool(svc.store.release, job_id)
