"""A finished job's results as a request's render options ask for them (style, strength, output, format),
whatever the job was first run with: the cache is keyed by the projection only, so a cache hit (or another
style) re-renders here from the latents and never projects again.

``face=all`` answers every face: ``output=paste`` as one photo with every face pasted back, the other outputs
as a ZIP with one image per face (``toon_00.png``, ``toon_01.png``, …). ``style=all`` answers a ZIP with every
style's images, each name prefixed with its style (``cartoon_toon_00.png``, ``ukiyoe_toon_00.png``, …,
``cartoon_paste.png``)."""
from __future__ import annotations

import io
import json
import zipfile
from typing import List, NamedTuple, Optional, Tuple

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
from ..styles import StyleCatalog, stored_style

NamedImages = List[Tuple[str, bytes]]


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


class Look(NamedTuple):
    """What a toon is rendered as: a style at a strength."""

    style: str
    strength: float


def rendered_as(job: Job) -> Look:
    """The style and strength the job's stored toons were rendered in."""
    return Look(stored_style(job.options), RenderOptions.of(job.options).strength)


def look_for(job: Job, catalog: StyleCatalog, style: str, requested: Optional[float]) -> Look:
    """``style`` at ``requested``, else at the job's own strength in the job's style, else at the style's default
    strength."""
    if requested is not None:
        return Look(style, requested)
    own = rendered_as(job)
    return Look(style, own.strength if style == own.style else catalog.default_strength(style))


async def face_bytes(svc: Service, job: Job, kind: str, face: int, look: Look, fmt: str) -> bytes:
    """A face's result image encoded as ``fmt``; a toon in another style or strength than the job's is
    re-rendered."""
    png = await run_in_threadpool(stored_png, svc, job, kind, face)  # the same 404/409 answers either way
    if kind == "toon" and look != rendered_as(job):
        return await run_in_threadpool(encode_image, await svc.render(job, face, look.strength, look.style), fmt)
    return await run_in_threadpool(_reencoded, png, fmt)


def _paste_at(svc: Service, job: Job, toons: List[np.ndarray]) -> np.ndarray:
    photo_bytes, faces_json = svc.store.read_file(job.id, PHOTO), svc.store.read_file(job.id, "faces.json")
    if photo_bytes is None or faces_json is None:
        raise ResultNotFound("job %s kept no photo to paste onto (expired, or made before photos were "
                                    "kept); send the photo again" % job.id)
    quads = [np.asarray(face["quad"]) for face in json.loads(faces_json)]
    return paste_faces(decode_image(photo_bytes, svc.limits), toons, quads)


async def pasted_bytes(svc: Service, job: Job, look: Look, fmt: str) -> bytes:
    """The photo with every face of the job pasted back as ``look``, encoded as ``fmt``."""
    png = await run_in_threadpool(stored_png, svc, job, "paste", 0)
    if look == rendered_as(job):
        return await run_in_threadpool(_reencoded, png, fmt)
    toons = [await svc.render(job, face, look.strength, look.style) for face in range(len(job.faces))]
    pasted = await run_in_threadpool(_paste_at, svc, job, toons)
    return await run_in_threadpool(encode_image, pasted, fmt)


def _zip(images: NamedImages) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for name, data in images:
            archive.writestr(name, data)
    return buffer.getvalue()


async def named_images(svc: Service, job: Job, kind: str, faces: List[int], look: Look, fmt: str) -> NamedImages:
    """The images one look gives: the pasted photo, or each face's (``toon_00.png``, …)."""
    ext = "jpg" if fmt == "jpeg" else fmt
    if kind == "paste":
        return [("paste.%s" % ext, await pasted_bytes(svc, job, look, fmt))]
    return [("%s_%02d.%s" % (kind, face, ext), await face_bytes(svc, job, kind, face, look, fmt)) for face in faces]


async def every_style(svc: Service, job: Job, kind: str, faces: List[int], requested: Optional[float],
                      fmt: str) -> Response:
    """``style=all``: a ZIP of each style's images, named ``<style>_<image>``; each style at ``requested`` or,
    when none was asked for, at its own default strength."""
    if kind not in ("toon", "paste"):
        raise InvalidOption("style=all renders toons: ask for output (kind) toon or paste; %s does not depend on "
                            "the style" % kind)
    catalog = await run_in_threadpool(svc.style_catalog)
    images: NamedImages = []
    for style in catalog.names:
        look = look_for(job, catalog, style, requested)
        images += [(style + "_" + name, data) for name, data in await named_images(svc, job, kind, faces, look, fmt)]
    return zip_response(await run_in_threadpool(_zip, images), job)


def zip_response(archive: bytes, job: Job) -> Response:
    headers = dict(_headers(job), **{"Content-Disposition": "attachment; filename=\"toonify-%s.zip\"" % job.id})
    return Response(archive, media_type="application/zip", headers=headers)


def _headers(job: Job) -> dict:
    return {"X-Toonify-Job": job.id, "X-Toonify-Faces": str(len(job.faces)),
            "Link": "</jobs/%s>; rel=\"job\"" % job.id}


def image_response(data: bytes, fmt: str, job: Job) -> Response:
    return Response(data, media_type=media_type(fmt), headers=_headers(job))


async def result_response(svc: Service, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    faces = list(range(len(job.faces))) if options.face == "all" else [0]
    requested = options.strength if "strength" in options.model_fields_set else None
    if options.every_style:
        return await every_style(svc, job, options.output, faces, requested, options.format)
    catalog = await run_in_threadpool(svc.style_catalog)
    look = look_for(job, catalog, options.style, requested)
    images = await named_images(svc, job, options.output, faces, look, options.format)
    if options.output == "paste" or options.face != "all":
        return image_response(images[0][1], options.format, job)
    return zip_response(await run_in_threadpool(_zip, images), job)
