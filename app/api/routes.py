"""HTTP routes: thin wrappers over the job store and the pipeline. Store calls and image work run in threads,
never on the event loop; upload bodies arrive already parsed by the middleware's strict multipart guard."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from typing import Dict, Optional, Tuple

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from ..imaging import encode_image, media_type
from ..jobs.job import TERMINAL, Job
from ..pipeline import OUTPUT_KINDS, ToonifyOptions
from ..web import PAGE
from .admission import admit
from .auth import NO_OWNER
from .errors import ApiError
from .middleware import FORM_SCOPE_KEY, OWNER_SCOPE_KEY
from .state import Service
from .streams import GONE, KEEP_ALIVE_S, JobWatcher
from .views import job_owner, job_view

router = APIRouter()
POLL_S = 0.2
OPTION_FIELDS = ("face", "steps", "seed", "strength", "output", "format")
UPLOAD_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": dict({"image": {"type": "string", "format": "binary",
                                  "description": "the photo (JPEG, PNG, WebP, HEIC, BMP, TIFF, GIF)"}},
                       **{name: {"type": "string"} for name in OPTION_FIELDS})}}}}}
CLIENT_CLOSED = 499  # nginx's status for "the client closed the request"; nobody reads it, metrics count it


def service(request: Request) -> Service:
    return request.app.state.service


def owner(request: Request) -> str:
    return request.scope.get(OWNER_SCOPE_KEY, NO_OWNER)


def _options(fields: Dict[str, str], settings) -> ToonifyOptions:
    fields = {k: v for k, v in fields.items() if k in OPTION_FIELDS and v != ""}
    fields.setdefault("steps", str(settings.default_steps))
    try:
        options = ToonifyOptions(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "options"
        raise ApiError("invalid_option", "%s: %s" % (name, first["msg"])) from None
    if options.steps > settings.max_steps:
        raise ApiError("invalid_option", "steps: at most %d on this server" % settings.max_steps)
    return options


def _format(value: Optional[str]) -> str:
    """png, jpeg or webp (a 422 that says so otherwise)."""
    try:
        return ToonifyOptions(format=value or "png").format
    except ValidationError:
        raise ApiError("invalid_option", "format: must be png, jpeg or webp") from None


async def _wait_while_connected(request: Request, svc: Service, job: Job) -> Optional[Job]:
    """Wait for a synchronous request's job. None when the client went away (its job is cancelled with
    TOONIFY_CANCEL_ABANDONED=1, else it runs on and an identical request gets its result). When the server
    is shutting down, answer now: the job goes on after the restart."""
    deadline = time.monotonic() + svc.settings.sync_timeout_s
    while not job.finished and time.monotonic() < deadline:
        if svc.draining.is_set():
            raise ApiError("shutting_down", "the server is restarting; job %s continues after the restart: poll "
                                            "/jobs/%s" % (job.id, job.id),
                           {"Retry-After": "30", "Location": "/jobs/%s" % job.id})
        if await request.is_disconnected():
            if svc.settings.cancel_abandoned:
                await run_in_threadpool(svc.store.cancel, job.id)
            return None
        await asyncio.sleep(POLL_S)
        job = await run_in_threadpool(_job_or_404, svc, job.id, owner(request))
    return job


def _job_or_404(svc: Service, job_id: str, who: str) -> Job:
    """The job, if it exists and belongs to the requester's API key (another key's jobs are 404 too)."""
    job = svc.store.get(job_id)
    if job is None or job.status == "reserved" or (svc.auth.enabled and job_owner(job) != who):
        raise ApiError("not_found", "no job %s (unknown, deleted, or expired after its TTL)" % job_id)
    return job


def _view(svc: Service, job: Job) -> Dict:
    return job_view(job, svc.store, lambda url: svc.auth.sign(job_owner(job), job.id, url))


def _image_response(data: bytes, fmt: str, job: Job, faces: int) -> Response:
    return Response(data, media_type=media_type(fmt),
                    headers={"X-Toonify-Job": job.id, "X-Toonify-Faces": str(faces),
                             "Link": "</jobs/%s>; rel=\"job\"" % job.id})


def _reencoded(png: bytes, fmt: str) -> bytes:
    """A stored PNG in the format asked for (blocking: run it in a thread)."""
    return png if fmt == "png" else encode_image(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), fmt)


def _result_png(svc: Service, job: Job, kind: str, face: int) -> bytes:
    if job.status != "succeeded":
        raise ApiError("not_finished", "job %s is %s; results exist once it has succeeded" % (job.id, job.status))
    if kind not in OUTPUT_KINDS:
        raise ApiError("invalid_option", "kind must be one of %s" % ", ".join(OUTPUT_KINDS))
    if kind != "paste" and not 0 <= face < len(job.faces):
        raise ApiError("not_found", "job %s has %d face(s); face %d does not exist" % (job.id, len(job.faces), face))
    name = "paste.png" if kind == "paste" else "%s_%02d.png" % (kind, face)
    data = svc.store.read_file(job.id, name)
    if data is None:
        raise ApiError("not_found", "the results of job %s have expired" % job.id)
    return data


async def _result_response(svc: Service, job: Job, kind: str, face: int, fmt: str) -> Response:
    png = await run_in_threadpool(_result_png, svc, job, kind, face)
    return _image_response(await run_in_threadpool(_reencoded, png, fmt), fmt, job, len(job.faces))


def _uploaded(request: Request) -> Tuple[bytes, Dict[str, str]]:
    """The photo and the option fields of the form the middleware parsed (app.api.multipart_guard)."""
    form = request.scope.get(FORM_SCOPE_KEY)
    if form is None:
        raise ApiError("unsupported_media_type", "send the photo as multipart/form-data in a field named 'image'")
    uploads = [part for part in form if part.name == "image" and part.is_file]
    if not uploads:
        raise ApiError("missing_image", "no photo: send it as a file in the multipart field 'image'")
    if len(uploads) > 1:
        raise ApiError("too_many_files", "send one photo per request (got %d in 'image')" % len(uploads))
    fields = {part.name: part.data.decode("utf-8", "replace") for part in form if not part.is_file}
    return uploads[0].data, fields


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/healthz", summary="Liveness: the process and its event loop answer (never touches the models)")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: models loaded and a warm-up synthesis passed (local), or Redis "
                               "reachable and at least one live worker (redis)")
async def readyz(request: Request) -> JSONResponse:
    ready, body = await run_in_threadpool(service(request).readiness)
    if not ready:
        return JSONResponse(body, status_code=503, headers={"Retry-After": "10"})
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    svc = service(request)
    await run_in_threadpool(svc.refresh_gauges)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/toonify", summary="Toonify a photo: waits and returns the image, or 202 + a job with "
                                 "'Prefer: respond-async' / ?async=1",
             responses={200: {"content": {"image/png": {}}}, 202: {"description": "job accepted"}},
             openapi_extra=UPLOAD_FORM)
async def toonify(request: Request, async_: Optional[str] = Query(None, alias="async")) -> Response:
    svc = service(request)
    data, fields = _uploaded(request)
    options = _options(fields, svc.settings)
    svc.check_accepting()
    digest = await run_in_threadpool(lambda: hashlib.sha256(data).hexdigest())
    cache_key = "%s;%s;%s" % (owner(request), digest, options.projection_key())
    job = await run_in_threadpool(svc.store.find_reusable, cache_key)  # same bytes and options: no work again
    if job is not None:
        svc.metrics.cache_hits.inc()
    else:
        job = await admit(svc, request.app.state.decode_budget, options, cache_key, data)
    wants_async = async_ in ("1", "true", "yes") or "respond-async" in request.headers.get("prefer", "").lower()
    if wants_async:
        status = 200 if job.finished else 202
        return JSONResponse(await run_in_threadpool(_view, svc, job), status_code=status,
                            headers={"Location": "/jobs/%s" % job.id, "Preference-Applied": "respond-async"})
    job = await _wait_while_connected(request, svc, job)
    if job is None:
        return Response(status_code=CLIENT_CLOSED)
    if job.status == "failed":
        raise ApiError(job.error_code or "internal_error", job.error_message or "toonification failed")
    if job.status != "succeeded":
        raise ApiError("cancelled" if job.status == "cancelled" else "not_finished",
                       "job %s is %s" % (job.id, job.status))
    if options.output == "toon" and options.strength != 1.0:
        rgb = await svc.render(job, 0, options.strength)
        return _image_response(await run_in_threadpool(encode_image, rgb, options.format), options.format, job,
                               len(job.faces))
    return await _result_response(svc, job, options.output, 0, options.format)


@router.get("/jobs/{job_id}", summary="Job status, progress, ETA, queue position, faces, links")
async def get_job(request: Request, job_id: str) -> JSONResponse:
    svc = service(request)
    job = await run_in_threadpool(_job_or_404, svc, job_id, owner(request))
    return JSONResponse(await run_in_threadpool(_view, svc, job))


@router.get("/jobs/{job_id}/events", summary="Server-sent events with the job's state as it changes")
async def job_events(request: Request, job_id: str) -> StreamingResponse:
    svc = service(request)
    await run_in_threadpool(_job_or_404, svc, job_id, owner(request))
    watcher: JobWatcher = request.app.state.watcher
    subscription = watcher.subscribe(job_id)

    async def stream():
        try:
            while True:
                view = await subscription.next(KEEP_ALIVE_S)
                if view is None:
                    yield ": keep-alive\n\n"
                elif view is GONE:
                    yield "event: gone\ndata: {}\n\n"
                    return
                else:
                    yield "event: job\ndata: %s\n\n" % json.dumps(view)
                    if view["status"] in TERMINAL:
                        return
        finally:
            watcher.unsubscribe(subscription)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/jobs/{job_id}/result", summary="A result image: toon, paste, aligned or reconstruction",
            responses={200: {"content": {"image/png": {}}}})
async def job_result(request: Request, job_id: str, face: int = 0, kind: str = "toon",
                     format: str = "png") -> Response:
    svc = service(request)
    fmt = _format(format)
    job = await run_in_threadpool(_job_or_404, svc, job_id, owner(request))
    return await _result_response(svc, job, kind, face, fmt)


@router.post("/jobs/{job_id}/render", summary="Re-render a face from its latents at another toon strength",
             responses={200: {"content": {"image/png": {}}}})
async def job_render(request: Request, job_id: str, strength: float = Query(..., ge=0.0, le=1.0), face: int = 0,
                     format: str = "png") -> Response:
    svc = service(request)
    fmt = _format(format)
    job = await run_in_threadpool(_job_or_404, svc, job_id, owner(request))
    rgb = await svc.render(job, face, strength)
    return _image_response(await run_in_threadpool(encode_image, rgb, fmt), fmt, job, len(job.faces))


@router.delete("/jobs/{job_id}", summary="Cancel the job (within one projection step) and delete its files")
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    svc = service(request)
    job = await run_in_threadpool(_job_or_404, svc, job_id, owner(request))
    if job.finished:
        await run_in_threadpool(svc.store.delete, job_id)
        return JSONResponse({"id": job_id, "status": job.status, "deleted": True})
    job = await run_in_threadpool(svc.store.cancel, job_id) or job
    await run_in_threadpool(svc.store.delete_files, job_id)
    return JSONResponse(await run_in_threadpool(_view, svc, job))
