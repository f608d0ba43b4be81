"""A finished job's results as a request's render options ask for them (strength, output, format), whatever
the job was first run with: the cache is keyed by the projection only, so a cache hit re-renders here.

``face=all`` answers every face: ``output=paste`` as one photo with every face pasted back, the other outputs
as a ZIP with one image per face (``toon_00.png``, ``toon_01.png``, …). Work on a full-size photo (a re-paste,
a re-encode) holds its cost from the decode budget (app.api.budget)."""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from ..encoding import encode_image, media_type
from ..errors import InvalidOption, ResultNotFound, ResultNotReady
from ..faces.repaste import reencode_cost_bytes, reencoded, repaste_cost_bytes, repasted
from ..jobs.job import PHOTO, Job
from ..options import OUTPUT_KINDS, RenderOptions, ToonifyOptions
from ..service import Service
from .budget import MemoryBudget, run_within


@dataclass(frozen=True)
class Renderer:
    """What a result answer draws on: the service (stored files, re-renders) and the decode budget."""

    svc: Service
    budget: MemoryBudget


def stored_png(svc: Service, job: Job, kind: str, face: int) -> bytes:
    """One stored result (PNG bytes), as rendered at the job's own strength. Blocking: run it in a thread."""
    if job.status != "succeeded":
        raise ResultNotReady("job %s is %s; results exist once it has succeeded" % (job.id, job.status))
    if kind not in OUTPUT_KINDS:
        raise InvalidOption("kind must be one of %s" % ", ".join(OUTPUT_KINDS))
    if kind != "paste" and not 0 <= face < len(job.faces):
        raise ResultNotFound("job %s has %d face(s); face %d does not exist" % (job.id, len(job.faces), face))
    data = svc.store.read_file(job.id, "paste.png" if kind == "paste" else "%s_%02d.png" % (kind, face))
    if data is None:
        raise ResultNotFound("the results of job %s have expired" % job.id)
    return data


async def _in_format(budget: MemoryBudget, png: bytes, fmt: str) -> bytes:
    """A stored PNG in the format asked for: PNGs are served as stored, others re-encoded within the budget."""
    if fmt == "png":
        return png
    cost = await run_in_threadpool(reencode_cost_bytes, png, fmt)
    return await run_within(budget, cost, reencoded, png, fmt)


def _rendered_at(job: Job) -> float:
    return RenderOptions.of(job.options).strength


async def face_bytes(on: Renderer, job: Job, kind: str, face: int, strength: float, fmt: str) -> bytes:
    """A face's result image encoded as ``fmt``; a toon at another strength than the job's is re-rendered."""
    png = await run_in_threadpool(stored_png, on.svc, job, kind, face)  # the same 404/409 answers either way
    if kind == "toon" and strength != _rendered_at(job):
        return await run_in_threadpool(encode_image, await on.svc.render(job, face, strength), fmt)
    return await _in_format(on.budget, png, fmt)


def _photo_and_quads(svc: Service, job: Job) -> Tuple[bytes, List[np.ndarray]]:
    photo_bytes, faces_json = svc.store.read_file(job.id, PHOTO), svc.store.read_file(job.id, "faces.json")
    if photo_bytes is None or faces_json is None:
        raise ResultNotFound("job %s kept no photo to paste onto (expired, or made before photos were "
                                    "kept); send the photo again" % job.id)
    return photo_bytes, [np.asarray(face["quad"]) for face in json.loads(faces_json)]


async def pasted_bytes(on: Renderer, job: Job, strength: float, fmt: str) -> bytes:
    """The photo with every face of the job pasted back at ``strength``, encoded as ``fmt``: the full-size
    decode, paste and encode hold their cost from the decode budget, as an upload's decode does."""
    png = await run_in_threadpool(stored_png, on.svc, job, "paste", 0)
    if strength == _rendered_at(job):
        return await _in_format(on.budget, png, fmt)
    toons = [await on.svc.render(job, face, strength) for face in range(len(job.faces))]
    photo, quads = await run_in_threadpool(_photo_and_quads, on.svc, job)
    cost = await run_in_threadpool(repaste_cost_bytes, photo, fmt, on.svc.limits)
    return await run_within(on.budget, cost, repasted, photo, toons, quads, fmt, on.svc.limits)


def _zip(images: List[bytes], kind: str, fmt: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for index, data in enumerate(images):
            archive.writestr("%s_%02d.%s" % (kind, index, "jpg" if fmt == "jpeg" else fmt), data)
    return buffer.getvalue()


def _headers(job: Job) -> dict:
    return {"X-Toonify-Job": job.id, "X-Toonify-Faces": str(len(job.faces)),
            "Link": "</jobs/%s>; rel=\"job\"" % job.id}


def image_response(data: bytes, fmt: str, job: Job) -> Response:
    return Response(data, media_type=media_type(fmt), headers=_headers(job))


async def result_response(on: Renderer, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    if options.output == "paste":
        return image_response(await pasted_bytes(on, job, options.strength, options.format), options.format, job)
    if options.face != "all":
        return image_response(await face_bytes(on, job, options.output, 0, options.strength, options.format),
                              options.format, job)
    images = [await face_bytes(on, job, options.output, face, options.strength, options.format)
              for face in range(len(job.faces))]
    headers = dict(_headers(job), **{"Content-Disposition": "attachment; filename=\"toonify-%s.zip\"" % job.id})
    archive = await run_in_threadpool(_zip, images, options.output, options.format)
    return Response(archive, media_type="application/zip", headers=headers)
