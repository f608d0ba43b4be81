"""A finished job's results as a request's render options ask for them (strength, output, format), whatever
the job was first run with: the cache is keyed by the projection only, so a cache hit re-renders here.

``face=all`` answers every face: ``output=paste`` as one photo with every face pasted back, the other outputs
as a ZIP with one image per face (``toon_00.png``, ``toon_01.png``, …)."""
from __future__ import annotations

import io
import json
import zipfile
from typing import List

import numpy as np
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from starlette.responses import Response

from ..align import paste_faces
from ..imaging import decode_image, encode_image, media_type
from ..jobs.job import PHOTO, Job
from ..pipeline import OUTPUT_KINDS, ToonifyOptions
from .errors import ApiError
from .state import Service


def stored_image(svc: Service, job: Job, kind: str, face: int) -> np.ndarray:
    """One stored result image, as rendered at the job's own strength."""
    if job.status != "succeeded":
        raise ApiError("not_finished", "job %s is %s; results exist once it has succeeded" % (job.id, job.status))
    if kind not in OUTPUT_KINDS:
        raise ApiError("invalid_option", "kind must be one of %s" % ", ".join(OUTPUT_KINDS))
    if kind != "paste" and not 0 <= face < len(job.faces):
        raise ApiError("not_found", "job %s has %d face(s); face %d does not exist" % (job.id, len(job.faces), face))
    data = svc.store.read_file(job.id, "paste.png" if kind == "paste" else "%s_%02d.png" % (kind, face))
    if data is None:
        raise ApiError("not_found", "the results of job %s have expired" % job.id)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _rendered_at(job: Job) -> float:
    return float(job.options.get("strength", 1.0))


async def face_image(svc: Service, job: Job, kind: str, face: int, strength: float) -> np.ndarray:
    if kind == "toon" and strength != _rendered_at(job):
        stored_image(svc, job, kind, face)  # the same 404/409 answers as a stored result
        return await svc.render(job, face, strength)
    return stored_image(svc, job, kind, face)


async def pasted_image(svc: Service, job: Job, strength: float) -> np.ndarray:
    """The photo with every face of the job pasted back at ``strength``."""
    if strength == _rendered_at(job):
        return stored_image(svc, job, "paste", 0)
    photo_bytes, faces_json = svc.store.read_file(job.id, PHOTO), svc.store.read_file(job.id, "faces.json")
    if photo_bytes is None or faces_json is None:
        raise ApiError("not_found", "job %s kept no photo to paste onto (expired, or made before photos were "
                                    "kept); send the photo again" % job.id)
    toons = [await svc.render(job, face, strength) for face in range(len(job.faces))]
    quads = [np.asarray(face["quad"]) for face in json.loads(faces_json)]
    photo = await run_in_threadpool(decode_image, photo_bytes, svc.limits)
    return await run_in_threadpool(paste_faces, photo, toons, quads)


def _zip(images: List[bytes], kind: str, fmt: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for index, data in enumerate(images):
            archive.writestr("%s_%02d.%s" % (kind, index, "jpg" if fmt == "jpeg" else fmt), data)
    return buffer.getvalue()


def _headers(job: Job) -> dict:
    return {"X-Toonify-Job": job.id, "X-Toonify-Faces": str(len(job.faces)),
            "Link": "</jobs/%s>; rel=\"job\"" % job.id}


def image_response(rgb: np.ndarray, fmt: str, job: Job) -> Response:
    return Response(encode_image(rgb, fmt), media_type=media_type(fmt), headers=_headers(job))


async def result_response(svc: Service, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    if options.output == "paste":
        return image_response(await pasted_image(svc, job, options.strength), options.format, job)
    if options.face != "all":
        return image_response(await face_image(svc, job, options.output, 0, options.strength), options.format, job)
    images = []
    for face in range(len(job.faces)):
        rgb = await face_image(svc, job, options.output, face, options.strength)
        images.append(await run_in_threadpool(encode_image, rgb, options.format))
    headers = dict(_headers(job), **{"Content-Disposition": "attachment; filename=\"toonify-%s.zip\"" % job.id})
    return Response(_zip(images, options.output, options.format), media_type="application/zip", headers=headers)
