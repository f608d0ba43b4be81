"""HTTP routes: thin wrappers over the job store and the pipeline."""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Optional

import numpy as np
from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import HTMLResponse, JSONResponse, Response
from typing_extensions import Literal

from stylegan2.tiny import MARKER_FILE

from ..imaging import decode_image
from ..jobs.job import Job, new_job_id
from ..pipeline import ToonifyOptions, select_faces
from ..web import PAGE
from .errors import ApiError
from .events import job_events
from .form import parse_form, refuse_unknown, single_upload
from .jobindex import ANONYMOUS, caller_id
from .rendering import face_image, image_response, pasted_image, result_response
from .schemas import JobList, ServerConfig
from .state import TINY_WARNING, Service
from .views import job_view
from .webhooks import refuse_bad_url

router = APIRouter()
POLL_S = 0.2


def service(request: Request) -> Service:
    return request.app.state.service


def _job_or_404(svc: Service, job_id: str) -> Job:
    job = svc.store.get(job_id)
    if job is None:
        raise ApiError("not_found", "no job %s (unknown, deleted, or expired after its TTL)" % job_id)
    return job


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


@router.post("/toonify", summary="Toonify a photo: waits and returns the image; 202 + a job with "
                                 "'Prefer: respond-async' / ?async=1; the job's events with "
                                 "'Accept: text/event-stream'")
async def toonify(
    request: Request,
    async_: Optional[str] = Query(None, alias="async", description="1: answer 202 + the job at once"),
    idempotency_key: Optional[str] = Header(None, max_length=200, description="a retried create with the same "
                                            "key (and the same photo and options) returns the first try's job"),
) -> Response:
    svc = service(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError("unsupported_media_type", "send the photo as multipart/form-data in a field named 'image'")
    form = parse_form(await request.form(), svc.settings)
    options = form.options
    data = await form.upload.read()
    svc.check_accepting()
    if form.webhook is not None:
        await run_in_threadpool(refuse_bad_url, form.webhook.url, svc.settings)
    owner, index = caller_id(request), request.app.state.job_index
    cache_key = hashlib.sha256(data).hexdigest() + ";" + options.projection_key()
    hook = (form.webhook.url, sorted(form.webhook.events)) if form.webhook else None  # the same in every process
    fingerprint = hashlib.sha256((cache_key + repr(options) + repr(hook)).encode()).hexdigest()
    job = await run_in_threadpool(_idempotent_job, svc, index, owner, idempotency_key, fingerprint)
    if job is None:
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
        if idempotency_key:
            claimed, _ = await run_in_threadpool(index.claim_key, owner, idempotency_key, job.id, fingerprint)
            job = _job_or_404(svc, claimed)
        if form.webhook is not None:
            request.app.state.webhooks.subscribe(job.id, form.webhook.url, form.webhook.events)
    if owner != ANONYMOUS:
        await run_in_threadpool(index.add, owner, job.id, job.created_at)
    location = {"Location": "/jobs/%s" % job.id}
    if "text/event-stream" in request.headers.get("accept", ""):
        return job_events(request, svc, job, 200, dict(location, **{"X-Toonify-Job": job.id}))
    wants_async = async_ in ("1", "true", "yes") or "respond-async" in request.headers.get("prefer", "").lower()
    if wants_async:
        status = 200 if job.finished else 202
        return JSONResponse(job_view(job, svc.store), status_code=status,
                            headers=dict(location, **{"Preference-Applied": "respond-async"}))
    deadline = time.monotonic() + svc.settings.sync_timeout_s
    while not job.finished and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        job = _job_or_404(svc, job.id)
    if job.status == "failed":
        raise ApiError(job.error_code or "internal_error", job.error_message or "toonification failed")
    if job.status != "succeeded":
        raise ApiError("cancelled" if job.status == "cancelled" else "not_finished",
                       "job %s is %s" % (job.id, job.status))
    return await result_response(svc, job, options)


def _idempotent_job(svc: Service, index, owner: str, key: Optional[str], fingerprint: str) -> Optional[Job]:
    """The job an earlier create with this Idempotency-Key made, if it still exists."""
    found = index.lookup_key(owner, key) if key else None
    if found is None:
        return None
    job_id, earlier = found
    if earlier != fingerprint:
        raise ApiError("invalid_option", "Idempotency-Key %r was used for another photo or other options; use a "
                                         "new key for a new request" % key)
    return svc.store.get(job_id)


@router.get("/config", summary="Defaults, limits, and whether the models are test models (for clients and the "
                               "page)", response_model=ServerConfig)
async def server_config(request: Request) -> JSONResponse:
    svc = service(request)
    settings = svc.settings
    tiny = (settings.models_dir / MARKER_FILE).exists()
    return JSONResponse({
        "defaults": ToonifyOptions(steps=settings.default_steps).model_dump(),
        "limits": {"max_steps": settings.max_steps, "max_upload_bytes": settings.max_upload_bytes,
                   "max_pixels": settings.max_pixels, "max_queue": settings.max_queue},
        "engine": settings.engine,
        "test_models": tiny,
        "test_models_warning": TINY_WARNING if tiny else None,
        "auth": bool(settings.api_keys),
        "webhooks": bool(settings.webhook_secret),
    })


@router.get("/jobs", summary="The caller's jobs (per API key), newest first", response_model=JobList)
async def list_jobs(request: Request, limit: int = Query(20, ge=1, le=100),
                    before: Optional[float] = Query(None, description="the 'next' link's cursor")) -> JSONResponse:
    svc, owner, index = service(request), caller_id(request), request.app.state.job_index
    if owner == ANONYMOUS:  # job ids are the keys to results: never list them to whoever asks
        raise ApiError("not_found", "this server lists jobs per API key, and it has none (TOONIFY_API_KEYS); "
                                    "keep the ids POST /toonify returns")
    cursor, views = float("inf") if before is None else before, []
    while len(views) < limit:
        entries = await run_in_threadpool(index.page, owner, cursor, limit)
        for job_id, created_at in entries:
            cursor = created_at
            job = svc.store.get(job_id)
            if job is None:
                await run_in_threadpool(index.forget, owner, job_id)
            elif len(views) < limit:
                views.append(job_view(job, svc.store))
        if len(entries) < limit:
            cursor = None
            break
    last = views[-1]["created_at"] if views else None
    more = cursor is not None and last is not None
    return JSONResponse({"jobs": views, "next": "/jobs?limit=%d&before=%r" % (limit, last) if more else None})


@router.get("/jobs/{job_id}", summary="Job status, progress, ETA, queue position, faces, links")
async def get_job(request: Request, job_id: str) -> JSONResponse:
    svc = service(request)
    return JSONResponse(job_view(_job_or_404(svc, job_id), svc.store))


@router.get("/jobs/{job_id}/events", summary="Server-sent events with the job's state as it changes; resumable "
                                            "with Last-Event-ID")
async def job_events_route(request: Request, job_id: str) -> Response:
    svc = service(request)
    return job_events(request, svc, _job_or_404(svc, job_id))


@router.get("/jobs/{job_id}/result", summary="A result image: toon, paste, aligned or reconstruction (toon and "
                                            "paste at any strength)",
            responses={200: {"content": {"image/png": {}}}})
async def job_result(request: Request, job_id: str, face: int = 0,
                     kind: Literal["toon", "paste", "aligned", "reconstruction"] = "toon",
                     format: Literal["png", "jpeg", "webp"] = "png",
                     strength: Optional[float] = Query(None, ge=0.0, le=1.0, description="default: the job's")
                     ) -> Response:
    svc = service(request)
    job = _job_or_404(svc, job_id)
    strength = float(job.options.get("strength", 1.0)) if strength is None else strength
    if kind == "paste":
        return image_response(await pasted_image(svc, job, strength), format, job)
    return image_response(await face_image(svc, job, kind, face, strength), format, job)


@router.post("/faces", summary="The usable faces of a photo, largest first (no job is made): choose one for "
                               "face=<index>")
async def detect_faces(request: Request) -> JSONResponse:
    svc = service(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError("unsupported_media_type", "send the photo as multipart/form-data in a field named 'image'")
    form = await request.form()
    upload = single_upload(form)
    refuse_unknown(form, ["image"])
    photo = await run_in_threadpool(decode_image, await upload.read(), svc.limits)
    faces = await run_in_threadpool(svc.detector.usable_faces, photo)
    return JSONResponse({"width": photo.shape[1], "height": photo.shape[0],
                         "faces": [{"index": i, "rect": f.to_json()["rect"], "score": f.to_json()["score"]}
                                   for i, f in enumerate(faces)]})


@router.post("/jobs/{job_id}/render", summary="Re-render a face from its latents at another toon strength",
             responses={200: {"content": {"image/png": {}}}})
async def job_render(request: Request, job_id: str, strength: float = Query(..., ge=0.0, le=1.0), face: int = 0,
                     format: str = "png") -> Response:
    svc = service(request)
    job = _job_or_404(svc, job_id)
    fmt = ToonifyOptions(format=format).format
    return image_response(await svc.render(job, face, strength), fmt, job)


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

