"""A finished job's results as a request's render options ask for them (style, strength, output, format),
whatever the job was first run with: the cache is keyed by the projection only, so a cache hit (or another
style) re-renders here from the latents and never projects again.

``face=all`` answers every face: ``output=paste`` as one photo with every face pasted back, the other outputs
as a ZIP with one image per face (``toon_00.png``, ``toon_01.png``, …). ``style=all`` answers a ZIP with every
style's images, each name prefixed with its style (``cartoon_toon_00.png``, ``ukiyoe_toon_00.png``, …,
``cartoon_paste.png``). Work on a full-size photo (a re-paste, a re-encode) holds its cost from the decode
budget (app.api.budget)."""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from ..encoding import encode_image, media_type
from ..errors import InvalidOption, ResultNotFound, ResultNotReady
from ..faces.repaste import reencode_cost_bytes, reencoded, repaste_cost_bytes, repasted
from ..jobs.job import PHOTO, Job
from ..options import OUTPUT_KINDS, RenderOptions, ToonifyOptions
from ..service import Service
from ..styles import StyleCatalog, stored_style
from .budget import MemoryBudget, run_within

NamedImages = List[Tuple[str, bytes]]


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


async def face_bytes(on: Renderer, job: Job, kind: str, face: int, look: Look, fmt: str) -> bytes:
    """A face's result image encoded as ``fmt``; a toon in another style or strength than the job's is
    re-rendered."""
    png = await run_in_threadpool(stored_png, on.svc, job, kind, face)  # the same 404/409 answers either way
    if kind == "toon" and look != rendered_as(job):
        return await run_in_threadpool(encode_image, await on.svc.render(job, face, look.strength, look.style), fmt)
    return await _in_format(on.budget, png, fmt)


def _photo_and_quads(svc: Service, job: Job) -> Tuple[bytes, List[np.ndarray]]:
    photo_bytes, faces_json = svc.store.read_file(job.id, PHOTO), svc.store.read_file(job.id, "faces.json")
    if photo_bytes is None or faces_json is None:
        raise ResultNotFound("job %s kept no photo to paste onto (expired, or made before photos were "
                                    "kept); send the photo again" % job.id)
    return photo_bytes, [np.asarray(face["quad"]) for face in json.loads(faces_json)]


async def pasted_bytes(on: Renderer, job: Job, look: Look, fmt: str) -> bytes:
    """The photo with every face of the job pasted back as ``look``, encoded as ``fmt``: the full-size decode,
    paste and encode hold their cost from the decode budget, as an upload's decode does."""
    png = await run_in_threadpool(stored_png, on.svc, job, "paste", 0)
    if look == rendered_as(job):
        return await _in_format(on.budget, png, fmt)
    toons = [await on.svc.render(job, face, look.strength, look.style) for face in range(len(job.faces))]
    photo, quads = await run_in_threadpool(_photo_and_quads, on.svc, job)
    cost = await run_in_threadpool(repaste_cost_bytes, photo, fmt, on.svc.limits)
    return await run_within(on.budget, cost, repasted, photo, toons, quads, fmt, on.svc.limits)


def _zip(images: NamedImages) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for name, data in images:
            archive.writestr(name, data)
    return buffer.getvalue()


async def named_images(on: Renderer, job: Job, kind: str, faces: List[int], look: Look, fmt: str) -> NamedImages:
    """The images one look gives: the pasted photo, or each face's (``toon_00.png``, …)."""
    ext = "jpg" if fmt == "jpeg" else fmt
    if kind == "paste":
        return [("paste.%s" % ext, await pasted_bytes(on, job, look, fmt))]
    return [("%s_%02d.%s" % (kind, face, ext), await face_bytes(on, job, kind, face, look, fmt)) for face in faces]


async def every_style(on: Renderer, job: Job, kind: str, faces: List[int], requested: Optional[float],
                      fmt: str) -> Response:
    """``style=all``: a ZIP of each style's images, named ``<style>_<image>``; each style at ``requested`` or,
    when none was asked for, at its own default strength."""
    if kind not in ("toon", "paste"):
        raise InvalidOption("style=all renders toons: ask for output (kind) toon or paste; %s does not depend on "
                            "the style" % kind)
    catalog = await run_in_threadpool(on.svc.style_catalog)
    images: NamedImages = []
    for style in catalog.names:
        look = look_for(job, catalog, style, requested)
        images += [(style + "_" + name, data) for name, data in await named_images(on, job, kind, faces, look, fmt)]
    return zip_response(await run_in_threadpool(_zip, images), job)


def zip_response(archive: bytes, job: Job) -> Response:
    headers = dict(_headers(job), **{"Content-Disposition": "attachment; filename=\"toonify-%s.zip\"" % job.id})
    return Response(archive, media_type="application/zip", headers=headers)


def _headers(job: Job) -> dict:
    return {"X-Toonify-Job": job.id, "X-Toonify-Faces": str(len(job.faces)),
            "Link": "</jobs/%s>; rel=\"job\"" % job.id}


def image_response(data: bytes, fmt: str, job: Job) -> Response:
    return Response(data, media_type=media_type(fmt), headers=_headers(job))


async def result_response(on: Renderer, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    faces = list(range(len(job.faces))) if options.face == "all" else [0]
    requested = options.strength if "strength" in options.model_fields_set else None
    if options.every_style:
        return await every_style(on, job, options.output, faces, requested, options.format)
    catalog = await run_in_threadpool(on.svc.style_catalog)
    look = look_for(job, catalog, options.style, requested)
    images = await named_images(on, job, options.output, faces, look, options.format)
    if options.output == "paste" or options.face != "all":
        return image_response(images[0][1], options.format, job)
    return zip_response(await run_in_threadpool(_zip, images), job)
