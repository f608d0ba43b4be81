"""HTTP routes: thin wrappers over the job store and the pipeline."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from typing import Optional

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from ..imaging import decode_image, encode_image, media_type
from ..jobs.job import Job, new_job_id
from ..pipeline import OUTPUT_KINDS, ToonifyOptions, select_faces
from ..web import PAGE
from .errors import ApiError
from .state import Service
from .views import job_view

router = APIRouter()
POLL_S = 0.2


def service(request: Request) -> Service:
    return request.app.state.service


def _options(form, settings) -> ToonifyOptions:
    fields = {name: form.get(name) for name in ("face", "steps", "seed", "strength", "output", "format")}
    fields = {k: v for k, v in fields.items() if isinstance(v, str) and v != ""}
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


def _method(form) -> str:
    method = form.get("method")
    method = method.strip().lower() if isinstance(method, str) and method.strip() else "project"
    if method not in ("project", "fast"):
        raise ApiError("invalid_option", "method must be 'project' (faithful, slow) or 'fast' (distilled student)")
    return method


def _job_or_404(svc: Service, job_id: str) -> Job:
    job = svc.store.get(job_id)
    if job is None:
        raise ApiError("not_found", "no job %s (unknown, deleted, or expired after its TTL)" % job_id)
    return job


def _image_response(rgb: np.ndarray, fmt: str, job: Job, faces: int) -> Response:
    return Response(encode_image(rgb, fmt), media_type=media_type(fmt),
                    headers={"X-Toonify-Job": job.id, "X-Toonify-Faces": str(faces),
                             "Link": "</jobs/%s>; rel=\"job\"" % job.id})


def _result_image(svc: Service, job: Job, kind: str, face: int) -> np.ndarray:
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
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


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
    body["fast"] = service(request).fast.readiness()
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
             responses={200: {"content": {"image/png": {}}}, 202: {"description": "job accepted"}})
async def toonify(
    request: Request,
    async_: Optional[str] = Query(None, alias="async"),
    image: Optional[UploadFile] = File(None, description="the photo (JPEG, PNG, WebP, HEIC, BMP, TIFF, GIF)"),
    face: Optional[str] = Form(None), steps: Optional[str] = Form(None), seed: Optional[str] = Form(None),
    strength: Optional[str] = Form(None), output: Optional[str] = Form(None), format: Optional[str] = Form(None),
    method: Optional[str] = Form(None, description="project (default: the faithful 500-step path) or fast "
                                                   "(the distilled student, if this server has one)"),
) -> Response:
    svc = service(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError("unsupported_media_type", "send the photo as multipart/form-data in a field named 'image'")
    form = await request.form()
    uploads = [item for item in form.getlist("image") if hasattr(item, "read")]
    if not uploads:
        raise ApiError("missing_image", "no photo: send it as a file in the multipart field 'image'")
    if len(uploads) > 1:
        raise ApiError("too_many_files", "send one photo per request (got %d in 'image')" % len(uploads))
    options = _options(form, svc.settings)
    data = await uploads[0].read()
    if _method(form) == "fast":
        if async_ in ("1", "true", "yes") or "respond-async" in request.headers.get("prefer", "").lower():
            raise ApiError("invalid_option", "method=fast answers at once and has no job: drop async / "
                                             "'Prefer: respond-async'")
        return await svc.fast.respond(svc.detector, data, options, svc.limits)
    svc.check_accepting()
    cache_key = hashlib.sha256(data).hexdigest() + ";" + options.projection_key()
    job = svc.store.find_reusable(cache_key)  # same bytes, same options: no decoding or detection again
    if job is not None:
        svc.metrics.cache_hits.inc()
    else:
        photo = await run_in_threadpool(decode_image, data, svc.limits)
        faces = select_faces(await run_in_threadpool(svc.detector.usable_faces, photo), options.face)
        depth = svc.store.queue_depth()
        if depth >= svc.settings.max_queue:
            retry = max(1, int(np.median(svc.store.recent_durations() or [30.0])))
            raise ApiError("queue_full", "the queue is full (%d jobs); try again in %d s" % (depth, retry),
                           {"Retry-After": str(retry)})
        job = await run_in_threadpool(svc.submit, new_job_id(), options.model_dump(), cache_key,
                                      [f.to_json() for f in faces], data)
    wants_async = async_ in ("1", "true", "yes") or "respond-async" in request.headers.get("prefer", "").lower()
    if wants_async:
        status = 200 if job.finished else 202
        return JSONResponse(job_view(job, svc.store), status_code=status,
                            headers={"Location": "/jobs/%s" % job.id, "Preference-Applied": "respond-async"})
    deadline = time.monotonic() + svc.settings.sync_timeout_s
    while not job.finished and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        job = _job_or_404(svc, job.id)
    if job.status == "failed":
        raise ApiError(job.error_code or "internal_error", job.error_message or "toonification failed")
    if job.status != "succeeded":
        raise ApiError("cancelled" if job.status == "cancelled" else "not_finished",
                       "job %s is %s" % (job.id, job.status))
    if options.output == "toon" and options.strength != 1.0:
        rgb = await svc.render(job, 0, options.strength)
    else:
        rgb = _result_image(svc, job, options.output, 0)
    return _image_response(rgb, options.format, job, len(job.faces))


@router.get("/jobs/{job_id}", summary="Job status, progress, ETA, queue position, faces, links")
async def get_job(request: Request, job_id: str) -> JSONResponse:
    svc = service(request)
    return JSONResponse(job_view(_job_or_404(svc, job_id), svc.store))


@router.get("/jobs/{job_id}/events", summary="Server-sent events with the job's state as it changes")
async def job_events(request: Request, job_id: str) -> StreamingResponse:
    svc = service(request)
    _job_or_404(svc, job_id)

    async def stream():
        last, last_sent = None, time.monotonic()
        while True:
            job = svc.store.get(job_id)
            if job is None:
                yield "event: gone\ndata: {}\n\n"
                return
            view = job_view(job, svc.store)
            state = (view["status"], view["stage"], view["step"])
            if state != last:
                yield "event: job\ndata: %s\n\n" % json.dumps(view)
                last, last_sent = state, time.monotonic()
            elif time.monotonic() - last_sent > 15:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            if job.finished or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/jobs/{job_id}/result", summary="A result image: toon, paste, aligned or reconstruction",
            responses={200: {"content": {"image/png": {}}}})
async def job_result(request: Request, job_id: str, face: int = 0, kind: str = "toon",
                     format: str = "png") -> Response:
    svc = service(request)
    job = _job_or_404(svc, job_id)
    fmt = ToonifyOptions(format=format).format if format else "png"
    return _image_response(_result_image(svc, job, kind, face), fmt, job, len(job.faces))


@router.post("/jobs/{job_id}/render", summary="Re-render a face from its latents at another toon strength",
             responses={200: {"content": {"image/png": {}}}})
async def job_render(request: Request, job_id: str, strength: float = Query(..., ge=0.0, le=1.0), face: int = 0,
                     format: str = "png") -> Response:
    svc = service(request)
    job = _job_or_404(svc, job_id)
    fmt = ToonifyOptions(format=format).format
    return _image_response(await svc.render(job, face, strength), fmt, job, len(job.faces))


@router.delete("/jobs/{job_id}", summary="Cancel the job (within one projection step) and delete its files")
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    svc = service(request)
    job = _job_or_404(svc, job_id)
    if job.finished:
        svc.store.delete(job_id)
        return JSONResponse({"id": job_id, "status": job.status, "deleted": True})
    job = svc.store.cancel(job_id) or job
    svc.store.delete_files(job_id)
    return JSONResponse(job_view(job, svc.store))

