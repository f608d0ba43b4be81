"""The FastAPI application: ``create_app(settings)``."""
from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Optional

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from ..budget import MemoryBudget
from ..composition import create_service
from ..config import FORM_OVERHEAD_BYTES, Settings
from ..errors import (
    BadRequest,
    InternalError,
    InvalidOption,
    MethodNotAllowed,
    MissingImage,
    NotFound,
    QueueUnavailable,
    ToonifyError,
)
from ..jobs.redis_store import REDIS_DOWN
from ..storage import is_out_of_space, storage_full_from
from ..webhooks.sender import WebhookSender
from .auth import Auth, RedactSecrets
from .deps import signed_view
from .errors import error_response
from .fast import FastService
from .jobindex import create_job_index
from .json_body import json_body_bytes
from .middleware import BodyLimits, ServiceMiddleware
from .openapi import install_docs
from .protocol import HeadAsGet
from .routes import router
from .shutdown import AnswerCutOffRequests, OpenRequests
from .signing_secret import secret_loader
from .streams import JobWatcher
from .webhooks import body_renderer

log = logging.getLogger("toonify")
PURGE_EVERY_S = 60
CUT_OFF_ANSWERS_S = 2  # at shutdown, for the requests uvicorn cancelled to send their 503


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    settings = settings or Settings()
    svc = create_service(settings)
    app = FastAPI(title="Toonify", version="0.1.0", docs_url=None, redoc_url=None,
                  description="POST a photo of a person to /toonify; get a cartoon version of their face.")
    app.state.service = svc
    app.state.auth = auth = Auth(settings.api_keys, secret_loader(settings, svc.store), settings.link_ttl_s,
                                 settings.open_metrics)
    app.state.fast = FastService(settings, svc.metrics.registry, svc.detector)
    app.state.job_index = create_job_index(svc.store, settings.data_dir, settings.result_ttl_s)
    app.state.webhooks = WebhookSender(svc.store.outbox, body_renderer(svc.store), settings)
    open_requests = OpenRequests()
    app.include_router(router)
    install_docs(app, settings)

    @app.exception_handler(ToonifyError)
    async def _toonify_error(_request, exc: ToonifyError):
        return error_response(exc)

    async def _queue_down(_request, exc: Exception):
        log.warning("Redis unreachable: %s", exc)
        return error_response(QueueUnavailable("the job queue cannot be reached right now; try again shortly",
                                               retry_after_s=5))

    for redis_error in REDIS_DOWN:
        app.add_exception_handler(redis_error, _queue_down)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0]
        if tuple(first.get("loc", ()))[-1:] == ("image",):  # sent, but as a text field
            return error_response(MissingImage("'image' must be a file: send the photo as a file in the multipart "
                                               "field 'image'"))
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
        return error_response(InvalidOption("%s: %s" % (where or "request", first.get("msg", "invalid"))))

    @app.exception_handler(HTTPException)
    async def _http(_request, exc: HTTPException):
        kind = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code, BadRequest)
        response = error_response(kind(str(exc.detail)))
        response.status_code = exc.status_code  # Starlette's own status, whatever the table says
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        if is_out_of_space(exc):
            log.warning("%s %s: the disk is full (%s)", request.method, request.url.path, exc)
            return error_response(storage_full_from(exc))
        log.exception("unhandled error")
        return error_response(InternalError("something went wrong on the server; try again later"))

    @app.on_event("startup")
    async def _start() -> None:
        logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
        app.state.decode_budget = MemoryBudget(settings.decode_memory_mb * 1_000_000)
        if auth.enabled:  # now, so that a damaged secret file stops the start; while Redis is down, at a request
            with suppress(QueueUnavailable):
                await run_in_threadpool(auth.load)
        app.state.watcher = JobWatcher(
            svc.store, lambda job: signed_view(svc, auth, job).as_json(), settings.max_streams)
        app.state.watcher.start()
        svc.start()
        app.state.webhooks.start()

        async def purge() -> None:
            while True:
                await run_in_threadpool(svc.store.purge_expired, settings.result_ttl_s)
                await asyncio.sleep(PURGE_EVERY_S)

        app.state.purger = asyncio.get_event_loop().create_task(purge())

    @app.on_event("shutdown")
    async def _stop() -> None:
        await open_requests.settled(CUT_OFF_ANSWERS_S)
        app.state.purger.cancel()
        app.state.watcher.stop()
        await run_in_threadpool(svc.store.changes.close)  # its thread, and its connection or subscriber
        app.state.webhooks.stop()
        svc.stop()

    app.add_middleware(HeadAsGet)  # inside ServiceMiddleware: metrics and API keys see the real method
    body = BodyLimits(max_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES, timeout_s=settings.body_timeout_s,
                      in_flight_bytes=settings.max_body_bytes_in_flight,
                      max_json_bytes=min(json_body_bytes(settings.max_upload_bytes, FORM_OVERHEAD_BYTES),
                                         settings.max_body_bytes_in_flight))
    app.add_middleware(ServiceMiddleware, limits=body, auth=auth, metrics=svc.metrics, routes=app.router.routes)
    # it answers what SIGTERM cuts off
    app.add_middleware(AnswerCutOffRequests, draining=svc.draining, open_requests=open_requests)
    if settings.cors_origins:  # outermost: a preflight needs no API key, and refusals (401, 400, 413, 503) carry CORS
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["*"],
                           expose_headers=["Location", "Retry-After", "X-Toonify-Job", "X-Toonify-Faces"])
    return app
