"""HTTP routes: thin wrappers over the job store, admission and rendering; every blocking call runs in a
thread, never on the event loop."""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Optional, Union

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from typing_extensions import Annotated, Literal

from stylegan2.model_files import MARKER_FILE
from stylegan2.styles import ALL_STYLES, DEFAULT_STYLE

from ..admission import admit, detect
from ..errors import InvalidOption, JobCancelled, JobFailed, NotFound, ResultNotReady, ShuttingDown
from ..jobs.job import IdempotencyKey, Job, NewJob
from ..jobs.previews import PreviewKind, preview_file
from ..options import AsciiFloat, AsciiInt, ToonifyOptions
from ..service import TINY_WARNING, Service
from .about import Health, Limits, ServerConfig, StyleList
from .deps import (
    Caller,
    CallerDep,
    DecodeBudgetDep,
    FastDep,
    JobDep,
    RendererDep,
    ServiceDep,
    WatcherDep,
)
from .events import job_events, last_seen
from .filenames import disposition, download_name
from .form import ToonifyRequest, form_parts, refuse_unknown, single_upload, toonify_request
from .json_body import json_request
from .middleware import BODY_SCOPE_KEY, is_json, release_body
from .page import EXAMPLES, FAVICON, PAGE
from .remote_image import fetch_image
from .rendering import (
    Look,
    archive_response,
    every_style,
    latents_response,
    look_for,
    result_image,
    result_response,
)
from .streams import GONE, JobWatcher
from .style_choice import StyleChoice, look_choice, style_choice
from .views import DeletedJob, FacesFound, FaceView, JobList, JobView, as_requested
from .webhooks import refuse_bad_url

router = APIRouter()
DRAIN_CHECK_S = 1.0  # how often a waiting request checks whether the server is shutting down
CLIENT_CLOSED = 499  # nginx's status for "the client closed the request"; nobody reads it, metrics count it


@dataclass(frozen=True)
class Answer:
    """How the client wants ``POST /toonify`` answered: with the job's events, with the job at once (async), or
    with the image (waiting); and the key that makes a retried create return the first try's job."""

    streams: bool
    wants_async: bool
    idempotency_key: Optional[str]


async def answer_wanted(
    request: Request,
    async_: Optional[str] = Query(None, alias="async", description="1: answer 202 + the job at once"),
    idempotency_key: Optional[str] = Header(None, max_length=200, description="a retried create with the same "
                                            "key (and the same photo and options) returns the first try's job"),
) -> Answer:
    return Answer("text/event-stream" in request.headers.get("accept", ""),
                  async_ in ("1", "true", "yes") or "respond-async" in request.headers.get("prefer", "").lower(),
                  idempotency_key)


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away: once the body is read, the ASGI server's receive() waits for that
    alone (no polling)."""
    try:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    except Exception:  # the connection broke some other way: gone too
        return


async def _wait_while_connected(request: Request, caller: Caller, watcher: JobWatcher, job: Job) -> Optional[Job]:
    """Wait for a synchronous request's job, told of its changes by the watcher (no store read of its own). None
    when the client went away (its job is cancelled with TOONIFY_CANCEL_ABANDONED=1, else it runs on and an
    identical request gets its result). When the server is shutting down, answer now: the job goes on after
    the restart."""
    svc = caller.svc
    deadline = time.monotonic() + svc.settings.sync_timeout_s
    gone = asyncio.ensure_future(_disconnected(request))
    subscription = watcher.subscribe(job.id, stream=False)
    try:
        while not job.finished and time.monotonic() < deadline:
            if svc.draining.is_set():
                raise ShuttingDown("the server is restarting; job %s continues after the restart: poll /jobs/%s"
                                   % (job.id, job.id), retry_after_s=30, job_id=job.id)
            changed = asyncio.ensure_future(subscription.next(DRAIN_CHECK_S))
            await asyncio.wait((changed, gone), return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                changed.cancel()
                if svc.settings.cancel_abandoned:
                    await run_in_threadpool(svc.store.cancel, job.id)
                return None
            if changed.result() is GONE:
                return await run_in_threadpool(caller.job, job.id)  # deleted meanwhile: its 404
            job = subscription.job or job
    finally:
        gone.cancel()
        watcher.unsubscribe(subscription)
    return job


async def _toonify_request(request: Request, svc: Service) -> ToonifyRequest:
    """The multipart form or the JSON body, read from the bytes the middleware holds (parsed in a thread: a
    data URL is tens of MB)."""
    settings = svc.settings
    if is_json(request.headers.get("content-type", "")):
        held = request.scope[BODY_SCOPE_KEY]
        return await run_in_threadpool(json_request, held.body, settings)
    return toonify_request(form_parts(request, "multipart/form-data (the file in 'image', or its URL in "
                                               "'image_url'), or as JSON: {\"image\": \"<https or data: URL>\"}"),
                           settings)


async def _photo(request: Request, svc: Service, form: ToonifyRequest) -> bytes:
    """The uploaded photo, or the one its URL leads to: fetched within the upload's limits, its bytes charged to
    the request's share of the bodies in flight."""
    if form.image_url is None:
        return form.upload
    settings = svc.settings
    return await fetch_image(form.image_url, settings.max_upload_bytes, settings.fetch_timeout_s,
                             settings.fetch_allow_private, request.scope[BODY_SCOPE_KEY].charge)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(FAVICON, media_type="image/vnd.microsoft.icon", headers={"Cache-Control": "max-age=86400"})


@router.get("/examples/{name}", include_in_schema=False)
async def example_photo(name: str) -> FileResponse:
    """The page's example photos (public domain), only those, by name."""
    if name not in EXAMPLES:
        raise NotFound("no example photo %r; the page offers %s" % (name, ", ".join(EXAMPLES)))
    return FileResponse(str(EXAMPLES[name]), media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@router.get("/healthz", summary="Liveness: the process and its event loop answer (never touches the models)")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: models loaded and a warm-up synthesis passed (local), or Redis "
                               "reachable and at least one live worker (redis)")
async def readyz(svc: ServiceDep, fast: FastDep) -> JSONResponse:
    ready, body = await run_in_threadpool(svc.readiness)
    body["fast"] = fast.readiness()
    if not ready:
        return JSONResponse(body, status_code=503, headers={"Retry-After": "10"})
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(svc: ServiceDep) -> Response:
    await run_in_threadpool(svc.refresh_gauges)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/toonify", summary="Toonify a photo: waits and returns the image; 202 + a job with "
                                 "'Prefer: respond-async' / ?async=1; the job's events with "
                                 "'Accept: text/event-stream'",
             responses={202: {"model": JobView, "description": "job accepted ('Prefer: respond-async' or ?async=1); "
                                                               "Location: /jobs/{id}"}})
async def toonify(
    request: Request, caller: CallerDep, answer: Annotated[Answer, Depends(answer_wanted)], fast: FastDep,
    watcher: WatcherDep, on: RendererDep,
) -> Response:
    svc, who = caller.svc, caller.owner
    form = await _toonify_request(request, svc)
    options = form.options
    seen = last_seen(request) if answer.streams else -1  # a bad Last-Event-ID is refused before any job is made
    if form.method == "fast":
        if options.style != DEFAULT_STYLE:
            raise InvalidOption("method=fast renders the default style (%s) only; drop style or method"
                                % DEFAULT_STYLE)
        if answer.wants_async:
            raise InvalidOption("method=fast answers at once and has no job: drop async / 'Prefer: respond-async'")
        return await fast.respond(await _photo(request, svc, form), options)
    svc.check_accepting()
    catalog = await run_in_threadpool(svc.style_catalog)
    catalog.check(options.style)
    if "strength" not in options.model_fields_set and not options.every_style:
        options = options.model_copy(update={"strength": catalog.default_strength(options.style)})
    if form.webhook is not None:
        await run_in_threadpool(refuse_bad_url, form.webhook.url, svc.settings)
    data = await _photo(request, svc, form)
    digest = (await run_in_threadpool(hashlib.sha256, data)).hexdigest()
    cache_key = "%s;%s;%s" % (who, digest, options.projection_options.key())
    hook = (form.webhook.url, sorted(form.webhook.events)) if form.webhook else None  # the same in every process
    fingerprint = hashlib.sha256((cache_key + repr(options) + repr(hook)).encode()).hexdigest()
    idempotency = IdempotencyKey(who, answer.idempotency_key, fingerprint) if answer.idempotency_key else None
    # the job an earlier try made, or one made from the same bytes and options: no work
    job = await run_in_threadpool(svc.store.find_reusable, cache_key, idempotency)
    if job is None:  # the create subscribes the webhook in its own transaction
        job = await admit(svc, on.budget, NewJob(who, options, cache_key, [], form.webhook), data, idempotency)
    else:
        svc.metrics.cache_hits.inc()
        if form.webhook is not None:  # before the answer: a create that got its answer has its subscription
            await run_in_threadpool(svc.store.subscribe, job.id, form.webhook)
    del form, data  # the job holds the photo now: the upload's bytes in flight go to other requests
    release_body(request.scope)
    await run_in_threadpool(caller.index.add, who, job.id, job.created_at)
    location = {"Location": "/jobs/%s" % job.id}
    if answer.streams:
        return job_events(watcher, job, seen, 200, dict(location, **{"X-Toonify-Job": job.id}),
                          options.render_options)
    if answer.wants_async:
        status = 200 if job.finished else 202
        view = as_requested((await run_in_threadpool(caller.view, job)).as_json(), options.render_options)
        return JSONResponse(view, status_code=status,
                            headers=dict(location, **{"Preference-Applied": "respond-async"}))
    job = await _wait_while_connected(request, caller, watcher, job)
    if job is None:
        return Response(status_code=CLIENT_CLOSED)
    if job.status == "failed":
        raise JobFailed(job.error_code, job.error_message)
    if job.status != "succeeded":
        raise (JobCancelled if job.status == "cancelled" else ResultNotReady)("job %s is %s" % (job.id, job.status))
    return await result_response(on, job, options)


@router.get("/config", summary="Defaults, limits, and whether the models are test models (for clients and the "
                               "page)")
async def server_config(svc: ServiceDep) -> ServerConfig:
    settings = svc.settings
    tiny = (settings.models_dir / MARKER_FILE).exists()
    return ServerConfig(
        defaults=ToonifyOptions(steps=settings.default_steps),
        limits=Limits(max_steps=settings.max_steps, max_upload_bytes=settings.max_upload_bytes,
                      max_pixels=settings.max_pixels, max_queue=settings.max_queue,
                      max_body_bytes_in_flight=settings.max_body_bytes_in_flight),
        engine=settings.engine,
        test_models=tiny,
        test_models_warning=TINY_WARNING if tiny else None,
        models_error=svc.models_problem,
        models_loading=svc.models_loading,
        auth=bool(settings.api_keys),
        webhooks=bool(settings.webhook_secret),
        styles=(await run_in_threadpool(svc.style_catalog)).names,
    )


@router.get("/styles", summary="The styles a job can be rendered in (style=NAME or style=all), each with a "
                               "thumbnail rendered at setup, and the styles the server refused and why")
async def list_styles(svc: ServiceDep) -> StyleList:
    return StyleList.model_validate((await run_in_threadpool(svc.style_catalog)).to_json())


@router.get("/jobs", summary="The caller's jobs (per API key; on a server without keys, every job), newest first")
async def list_jobs(caller: CallerDep, limit: Annotated[AsciiInt, Query(ge=1, le=100)] = 20,
                    before: Annotated[Optional[AsciiFloat], Query(description="the 'next' link's cursor")] = None
                    ) -> JobList:
    svc, who, index = caller.svc, caller.owner, caller.index
    cursor, views = float("inf") if before is None else before, []
    while len(views) < limit:
        entries = await run_in_threadpool(index.page, who, cursor, limit)
        for job_id, created_at in entries:
            cursor = created_at
            job = await run_in_threadpool(svc.store.get, job_id)
            if job is None:
                await run_in_threadpool(index.forget, who, job_id)
            elif len(views) < limit:
                views.append(await run_in_threadpool(caller.view, job))
        if len(entries) < limit:
            cursor = None
            break
    last = views[-1].created_at if views else None
    more = cursor is not None and last is not None
    return JobList(jobs=views, next="/jobs?limit=%d&before=%r" % (limit, last) if more else None)


@router.get("/jobs/{job_id}", summary="Job status, progress, ETA, queue position, faces, links")
async def get_job(caller: CallerDep, job: JobDep) -> JobView:
    return await run_in_threadpool(caller.view, job)


@router.get("/jobs/{job_id}/events", summary="Server-sent events with the job's state as it changes; resumable "
                                            "with Last-Event-ID")
async def job_events_route(request: Request, job: JobDep, watcher: WatcherDep) -> Response:
    return job_events(watcher, job, last_seen(request))


@router.get("/jobs/{job_id}/result", summary="A result: toon, paste, aligned or reconstruction image (toon and "
                                            "paste at any strength, in any style), or a face's W+ latents (.npy)",
            responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}}})
async def job_result(on: RendererDep, choice: Annotated[StyleChoice, Depends(look_choice)], job: JobDep,
                     face: Annotated[AsciiInt, Query()] = 0,
                     kind: Literal["toon", "paste", "aligned", "reconstruction", "latents"] = "toon",
                     format: Literal["png", "jpeg", "webp"] = "png") -> Response:
    if kind == "latents":
        return await latents_response(on, job, face)
    if choice.style == ALL_STYLES:
        return await every_style(on, job, kind, [face], choice.strength, format)
    look = look_for(job, choice.catalog, choice.style_of(job), choice.strength)
    return await result_image(on, job, kind, face, look, format)


@router.get("/jobs/{job_id}/archive", summary="Every result of the job in one ZIP: per face the toon, aligned "
                                             "crop, reconstruction and latents, and the pasted photo",
            responses={200: {"content": {"application/zip": {}}}})
async def job_archive(on: RendererDep, choice: Annotated[StyleChoice, Depends(look_choice)], job: JobDep,
                      format: Optional[Literal["png", "jpeg", "webp"]] = Query(
                          None, description="default: the job's format")) -> Response:
    style = ALL_STYLES if choice.style == ALL_STYLES else choice.style_of(job)
    fmt = format or job.options.format
    return await archive_response(on, job, choice.catalog, style, choice.strength, fmt)


@router.get("/jobs/{job_id}/preview", summary="The latest live preview of a face while the job projects (a "
                                             "256x256 JPEG, replaced every TOONIFY_PREVIEW_EVERY_S seconds)",
            responses={200: {"content": {"image/jpeg": {}}}})
async def job_preview(svc: ServiceDep, job: JobDep, face: Annotated[AsciiInt, Query()] = 0,
                      kind: PreviewKind = "toon",
                      step: Annotated[Optional[AsciiInt], Query(description="ignored: tells one preview's link "
                                                                            "from the next")] = None) -> Response:
    if job.faces and not 0 <= face < len(job.faces):
        raise NotFound("job %s has %d face(s); face %d does not exist" % (job.id, len(job.faces), face))
    # the record goes with each new run, so an earlier attempt's files are never shown as this one's
    data = await run_in_threadpool(svc.store.read_file, job.id, preview_file(face, kind)) if job.preview else None
    if data is None:
        if not svc.settings.preview_every_s:
            raise NotFound("this server renders no previews (TOONIFY_PREVIEW_EVERY_S=0); wait for the result")
        raise NotFound("job %s has no preview of face %d yet: the first comes a few seconds into its projection "
                       "(the job's events announce each one)" % (job.id, face))
    name = download_name(job.id[:8], ["face%d" % face, "preview", kind, "step%d" % job.step], "jpg")
    return Response(data, media_type="image/jpeg", headers=dict(disposition(name, inline=True),
                                                                **{"Cache-Control": "no-cache"}))


@router.post("/faces", summary="The usable faces of a photo, largest first (no job is made): choose one for "
                               "face=<index>")
async def detect_faces(request: Request, svc: ServiceDep, budget: DecodeBudgetDep) -> FacesFound:
    parts = form_parts(request)
    upload = single_upload(parts)
    refuse_unknown(parts, ["image"])
    (width, height), faces = await detect(svc, budget, upload)
    return FacesFound(width=width, height=height,
                      faces=[FaceView(index=i, rect=f.to_json()["rect"], score=f.to_json()["score"])
                             for i, f in enumerate(faces)])


@router.post("/jobs/{job_id}/render", summary="Re-render a face from its latents at another toon strength or in "
                                             "another style (style=all: a ZIP of every style)",
             responses={200: {"content": {"image/png": {}, "application/zip": {}}}})
async def job_render(on: RendererDep, choice: Annotated[StyleChoice, Depends(style_choice)],
                     job: JobDep, strength: Annotated[AsciiFloat, Query(ge=0.0, le=1.0)],
                     face: Annotated[AsciiInt, Query()] = 0, format: Literal["png", "jpeg", "webp"] = "png"
                     ) -> Response:
    if choice.style == ALL_STYLES:
        return await every_style(on, job, "toon", [face], strength, format)
    return await result_image(on, job, "toon", face, Look(choice.style_of(job), strength), format)


@router.delete("/jobs/{job_id}", summary="Cancel the job (within one projection step) and delete its files")
async def delete_job(caller: CallerDep, job: JobDep) -> Union[DeletedJob, JobView]:
    svc = caller.svc
    if job.finished:
        await run_in_threadpool(svc.store.delete, job.id)
        return DeletedJob(id=job.id, status=job.status.value, deleted=True)
    job = await run_in_threadpool(svc.store.cancel, job.id) or job
    await run_in_threadpool(svc.store.delete_files, job.id)
    return await run_in_threadpool(caller.view, job)
