"""A finished job's results as HTTP responses: the images, ZIPs and latents app.rendering makes, each named
for download (app.api.filenames) and linked to its job. ``GET /jobs/{id}/archive`` is streamed from the ZIP
app.rendering spools to a temporary file."""
from __future__ import annotations

from typing import Dict, List, Optional

from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from stylegan2.styles import ALL_STYLES

from ..encoding import extension, media_type
from ..jobs.job import Job
from ..jobs.results import latents_npy
from ..options import ToonifyOptions
from ..rendering import (
    Look,
    Renderer,
    SpooledZip,
    check_result,
    every_style_images,
    face_bytes,
    fill_archive,
    look_for,
    named_images,
    pasted_bytes,
    zip_bytes,
)
from ..styles import StyleCatalog
from .filenames import disposition, download_name, look_parts

NPY_TYPE = "application/octet-stream"  # NumPy's .npy has no registered media type


def _headers(job: Job, name: str, inline: bool) -> Dict[str, str]:
    return dict(disposition(name, inline), **{"X-Toonify-Job": job.id, "X-Toonify-Faces": str(len(job.faces)),
                                              "Link": "</jobs/%s>; rel=\"job\"" % job.id})


def zip_response(archive: bytes, job: Job, name: str) -> Response:
    return Response(archive, media_type="application/zip", headers=_headers(job, name, inline=False))


async def every_style(on: Renderer, job: Job, kind: str, faces: List[int], requested: Optional[float],
                      fmt: str) -> Response:
    """``style=all``: a ZIP of each style's images, named ``<style>_<image>``."""
    images = await every_style_images(on, job, kind, faces, requested, fmt)
    where = ["face%d" % faces[0]] if len(faces) == 1 else ["faces"]
    parts = (["paste"] if kind == "paste" else where + [kind]) + look_parts(kind, ALL_STYLES, requested)
    return zip_response(await run_in_threadpool(zip_bytes, images), job, download_name(job.id[:8], parts, "zip"))


def image_name(job: Job, kind: str, face: int, look: Look, fmt: str) -> str:
    """``toonify-<job>-face0-toon-cartoon-0.50.png``, ``…-paste-cartoon-0.50.jpg``, ``…-face1-aligned.png``."""
    where = [] if kind == "paste" else ["face%d" % face]
    return download_name(job.id[:8], where + [kind] + look_parts(kind, look.style, look.strength), extension(fmt))


def image_response(data: bytes, fmt: str, job: Job, name: str) -> Response:
    return Response(data, media_type=media_type(fmt), headers=_headers(job, name, inline=True))


async def result_image(on: Renderer, job: Job, kind: str, face: int, look: Look, fmt: str) -> Response:
    """One result image (a face's, or the pasted photo) as ``look`` in ``fmt``, named for download."""
    if kind == "paste":
        data = await pasted_bytes(on, job, look, fmt)
    else:
        data = await face_bytes(on, job, kind, face, look, fmt)
    return image_response(data, fmt, job, image_name(job, kind, face, look, fmt))


def _latents_name(job: Job, face: int) -> str:
    return download_name(job.id[:8], ["face%d" % face, "latents"], "npy")


async def latents_response(on: Renderer, job: Job, face: int) -> Response:
    """A face's W+ latents as the CLI saves them (``numpy.load`` → float32 [num_ws, 512])."""
    await run_in_threadpool(check_result, on.svc, job, "latents", face)
    data = await run_in_threadpool(latents_npy, on.svc.store, job, face)
    return Response(data, media_type=NPY_TYPE, headers=_headers(job, _latents_name(job, face), inline=False))


async def result_response(on: Renderer, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    faces = list(range(len(job.faces))) if options.face == "all" else [0]
    requested = options.strength if "strength" in options.model_fields_set else None
    if options.every_style:
        return await every_style(on, job, options.output, faces, requested, options.format)
    catalog = await run_in_threadpool(on.svc.style_catalog)
    look = look_for(job, catalog, options.style, requested)
    if options.output == "paste" or options.face != "all":
        return await result_image(on, job, options.output, 0, look, options.format)
    images = await named_images(on, job, options.output, faces, look, options.format)
    parts = ["faces", options.output] + look_parts(options.output, look.style, look.strength)
    return zip_response(await run_in_threadpool(zip_bytes, images), job, download_name(job.id[:8], parts, "zip"))


async def archive_response(on: Renderer, job: Job, catalog: StyleCatalog, style: str, requested: Optional[float],
                           fmt: str) -> Response:
    """Every result of the job in one ZIP: per face the toon (``toon_00.png``), aligned crop, reconstruction and
    latents (``latents_00.npy``), then the pasted photo, as ``style`` at ``requested`` (else the job's own
    look); ``style=all``: the toons and pastes of every style, prefixed with its name (``ukiyoe_toon_00.png``).
    Re-renders and re-encodes hold the decode budget as they do for /result."""
    await run_in_threadpool(check_result, on.svc, job, "latents", 0)  # 409 / 404 before any work
    if style == ALL_STYLES:
        looks = [(name + "_", look_for(job, catalog, name, requested)) for name in catalog.names]
    else:
        looks = [("", look_for(job, catalog, style, requested))]
    spool = await run_in_threadpool(SpooledZip, job.finished_at or job.updated_at)
    try:
        await fill_archive(on, job, spool, looks, fmt)
        size = await run_in_threadpool(spool.finish)
    except BaseException:
        spool.close()
        raise
    label = look_parts("toon", style, requested if style == ALL_STYLES else looks[0][1].strength)
    headers = _headers(job, download_name(job.id[:8], ["results"] + label, "zip"), inline=False)
    headers["Content-Length"] = str(size)
    return StreamingResponse(spool.chunks(), media_type="application/zip", headers=headers)
