"""A job's server-sent events, resumable. Each event carries the job's state and an ``id:`` that grows with
it (the job's last-change time in µs), the stream opens with ``retry:``, and a client that reconnects with
``Last-Event-ID`` gets only newer states (a finished job it has fully seen answers 204, which tells an
``EventSource`` to stop reconnecting). States are snapshots: a resumed client gets the latest, not each
step it missed."""
from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator, Optional

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..jobs.job import Job
from .state import Service
from .views import job_view

RETRY_MS = 2000
POLL_S = 0.2
KEEP_ALIVE_S = 15


def event_id(job: Job) -> int:
    return int(round(job.updated_at * 1e6))


def last_seen(request: Request) -> int:
    value = request.headers.get("last-event-id", "").strip()
    return int(value) if value.isdigit() else -1


async def _stream(request: Request, svc: Service, job_id: str, seen: int) -> AsyncIterator[str]:
    yield "retry: %d\n\n" % RETRY_MS
    last_sent = time.monotonic()
    while True:
        job = svc.store.get(job_id)
        if job is None:
            yield "event: gone\ndata: {}\n\n"
            return
        current = event_id(job)
        if current > seen:
            yield "id: %d\nevent: job\ndata: %s\n\n" % (current, json.dumps(job_view(job, svc.store)))
            seen, last_sent = current, time.monotonic()
        elif time.monotonic() - last_sent > KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if job.finished or await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


def job_events(request: Request, svc: Service, job: Job, status: int = 200,
               headers: Optional[dict] = None) -> Response:
    seen = last_seen(request)
    if job.finished and event_id(job) <= seen:
        return Response(status_code=204)
    return StreamingResponse(_stream(request, svc, job.id, seen), status_code=status,
                             media_type="text/event-stream",
                             headers=dict(headers or {}, **{"Cache-Control": "no-cache"}))
