"""Accepting an upload as a job (the face detection and queue admission behind ``POST /toonify`` and
``POST /faces``): a queue place is reserved (atomically, in the store) before any decoding or
detection, decodes run within a memory budget (TOONIFY_DECODE_MEMORY_MB) at reduced size, and a job carries
a bounded number of faces (TOONIFY_MAX_FACES).

Each decode first reads the image header and holds what its decode will cost at its peak
(app.faces.decode.decode_cost_bytes) from the budget until it is done: many small photos decode at once, a 49-MP
lossless WebP (~0.75 GB) waits until that much memory is free.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import List, Optional, Tuple

from fastapi.concurrency import run_in_threadpool

from .budget import MemoryBudget, run_within
from .errors import QueueFull, TooManyFaces
from .faces.decode import decode_cost_bytes, decode_reduced
from .faces.detect import DETECT_SIDE, Face, select_faces
from .jobs.job import AdmittedFace, IdempotencyKey, Job, NewJob, new_job_id
from .service import Service


def scale_face(face: Face, scale: float) -> Face:
    """A face found on a copy reduced by ``scale``, in photo coordinates (boxes rounded outwards)."""
    if scale == 1.0:
        return face
    rect = [int(math.floor(face.rect[0] / scale)), int(math.floor(face.rect[1] / scale)),
            int(math.ceil(face.rect[2] / scale)), int(math.ceil(face.rect[3] / scale))]
    return Face(rect, face.score, face.landmarks / scale)


def _chosen(svc: Service, faces: List[Face], choice: str) -> List[Face]:
    chosen = select_faces(faces, choice)
    if len(chosen) > svc.settings.max_faces:
        raise TooManyFaces("the photo has %d faces; one job toonifies at most %d — pick one with face=<index> "
                           "(0 is the largest) or crop the photo" % (len(chosen), svc.settings.max_faces))
    return chosen


async def detect(svc: Service, budget: MemoryBudget, data: bytes) -> Tuple[Tuple[int, int], List[Face]]:
    """The photo's (width, height) and its usable faces in photo coordinates, largest first: decoded at
    reduced size within the memory budget."""
    cost = await run_in_threadpool(decode_cost_bytes, data, DETECT_SIDE, svc.limits)
    reduced, scale = await run_within(budget, cost, decode_reduced, data, DETECT_SIDE, svc.limits)
    faces = await run_in_threadpool(svc.detector.usable_faces, reduced)
    size = (int(round(reduced.shape[1] / scale)), int(round(reduced.shape[0] / scale)))
    return size, [scale_face(face, scale) for face in faces]


async def queue_full(svc: Service) -> QueueFull:
    durations = await run_in_threadpool(svc.store.recent_durations)
    retry = max(1, int(statistics.median(durations or [30.0])))
    return QueueFull("the queue is full (%d jobs at most); try again in %d s" % (svc.settings.max_queue, retry),
                     retry_after_s=retry)


async def admit(svc: Service, budget: MemoryBudget, request: NewJob, data: bytes,
                idempotency: Optional[IdempotencyKey] = None) -> Job:
    """Reserve a place in the queue, then find the faces (``request`` comes without them), then turn the
    reservation into the job — or answer with the job an identical create made meanwhile (the store decides
    atomically). Any failure on the way, or that other job, gives the place back."""
    job_id = new_job_id()
    if not await run_in_threadpool(svc.store.reserve, job_id, svc.settings.max_queue):
        raise await queue_full(svc)
    created: Optional[Job] = None
    try:
        _, found = await detect(svc, budget, data)
        faces = [AdmittedFace.found(face.rect, face.score, face.landmarks)
                 for face in _chosen(svc, found, request.options.face)]
        created = await run_in_threadpool(svc.submit, job_id, replace(request, faces=faces), data, idempotency)
    finally:
        if created is None or created.id != job_id:
            await run_in_threadpool(svc.store.release, job_id)
    if created.id != job_id:
        svc.metrics.cache_hits.inc()
    return created
