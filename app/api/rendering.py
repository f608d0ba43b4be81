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

from ..encoding import encode_image, media_type
from ..errors import InvalidOption, ResultNotFound, ResultNotReady
from ..faces.decode import decode_image
from ..faces.paste import paste_faces
from ..jobs.job import PHOTO, Job
from ..options import OUTPUT_KINDS, RenderOptions, ToonifyOptions
from ..service import Service


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


def _reencoded(png: bytes, fmt: str) -> bytes:
    """A stored PNG in the format asked for (blocking): PNGs are served as stored, never decoded."""
    return png if fmt == "png" else encode_image(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), fmt)


def _rendered_at(job: Job) -> float:
    return RenderOptions.of(job.options).strength


async def face_bytes(svc: Service, job: Job, kind: str, face: int, strength: float, fmt: str) -> bytes:
    """A face's result image encoded as ``fmt``; a toon at another strength than the job's is re-rendered."""
    png = await run_in_threadpool(stored_png, svc, job, kind, face)  # the same 404/409 answers either way
    if kind == "toon" and strength != _rendered_at(job):
        return await run_in_threadpool(encode_image, await svc.render(job, face, strength), fmt)
    return await run_in_threadpool(_reencoded, png, fmt)


def _paste_at(svc: Service, job: Job, toons: List[np.ndarray]) -> np.ndarray:
    photo_bytes, faces_json = svc.store.read_file(job.id, PHOTO), svc.store.read_file(job.id, "faces.json")
    if photo_bytes is None or faces_json is None:
        raise ResultNotFound("job %s kept no photo to paste onto (expired, or made before photos were "
                                    "kept); send the photo again" % job.id)
    quads = [np.asarray(face["quad"]) for face in json.loads(faces_json)]
    return paste_faces(decode_image(photo_bytes, svc.limits), toons, quads)


async def pasted_bytes(svc: Service, job: Job, strength: float, fmt: str) -> bytes:
    """The photo with every face of the job pasted back at ``strength``, encoded as ``fmt``."""
    png = await run_in_threadpool(stored_png, svc, job, "paste", 0)
    if strength == _rendered_at(job):
        return await run_in_threadpool(_reencoded, png, fmt)
    toons = [await svc.render(job, face, strength) for face in range(len(job.faces))]
    pasted = await run_in_threadpool(_paste_at, svc, job, toons)
    return await run_in_threadpool(encode_image, pasted, fmt)


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


async def result_response(svc: Service, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    if options.output == "paste":
        return image_response(await pasted_bytes(svc, job, options.strength, options.format), options.format, job)
    if options.face != "all":
        return image_response(await face_bytes(svc, job, options.output, 0, options.strength, options.format),
                              options.format, job)
    images = [await face_bytes(svc, job, options.output, face, options.strength, options.format)
              for face in range(len(job.faces))]
    headers = dict(_headers(job), **{"Content-Disposition": "attachment; filename=\"toonify-%s.zip\"" % job.id})
    archive = await run_in_threadpool(_zip, images, options.output, options.format)
    return Response(archive, media_type="application/zip", headers=headers)
