"""A job's server-sent events, resumable. Each event carries the job's state and an ``id:`` that grows with
it (the job's last-change time in µs), the stream opens with ``retry:``, and a client that reconnects with
``Last-Event-ID`` gets only newer states (a finished job it has fully seen answers 204, which tells an
``EventSource`` to stop reconnecting). States are snapshots: a resumed client gets the latest, not each
step it missed. No stream reads the store itself: the one JobWatcher (app.api.streams) reads a watched job
once per change the store's feed announces and hands each stream the newest view. While a job projects, a
``preview`` event follows the state that brought a new live preview (app.jobs.previews): ``{"id", "step",
"total", "faces": [{"face", "toon", "reconstruction"}]}``, links to its images."""
from __future__ import annotations

import json
import re
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import InvalidOption
from ..jobs.job import TERMINAL, Job
from ..options import RenderOptions
from .streams import GONE, KEEP_ALIVE_S, JobWatcher, Subscription
from .views import as_requested

RETRY_MS = 2000
EVENT_ID = re.compile(r"[0-9]{1,18}")  # what event_id() writes (µs since 1970: 16 digits until the year 2286)


def event_id(updated_at: float) -> int:
    return int(round(updated_at * 1e6))


def last_seen(request: Request) -> int:
    """The ``Last-Event-ID`` a reconnecting client sends: an id this stream wrote, or none (-1)."""
    value = request.headers.get("last-event-id", "").strip(" \t")
    if not value:
        return -1
    if not EVENT_ID.fullmatch(value):
        raise InvalidOption("Last-Event-ID must be the id of an event this stream sent (ASCII digits, at most 18); "
                            "reconnect without it to get the current state")
    return int(value)


def _shown(preview: Dict[str, Any]) -> Tuple[int, List[int]]:
    """What tells one live preview from the next (its links' signatures change every second)."""
    return preview["step"], [face["face"] for face in preview["faces"]]


async def _stream(watcher: JobWatcher, subscription: Subscription, seen: int,
                  render: Optional[RenderOptions]) -> AsyncIterator[str]:
    shown: Optional[Tuple[int, List[int]]] = None  # the live preview this stream announced last
    try:
        yield "retry: %d\n\n" % RETRY_MS
        while True:
            view = await subscription.next(KEEP_ALIVE_S)
            if view is None:
                yield ": keep-alive\n\n"
            elif view is GONE:
                yield "event: gone\ndata: {}\n\n"
                return
            else:
                current = event_id(view["updated_at"])
                if current > seen:
                    requested = as_requested(view, render)
                    data = subscription.text if requested is view else json.dumps(requested)
                    yield "id: %d\nevent: job\ndata: %s\n\n" % (current, data)
                    seen = current
                preview = view.get("preview")
                if preview is not None and _shown(preview) != shown:  # no id: it belongs to the job event's state
                    yield "event: preview\ndata: %s\n\n" % json.dumps(dict({"id": view["id"]}, **preview))
                    shown = _shown(preview)
                if view["status"] in TERMINAL:
                    return
    finally:
        watcher.unsubscribe(subscription)


def job_events(watcher: JobWatcher, job: Job, seen: int, status: int = 200, headers: Optional[dict] = None,
               render: Optional[RenderOptions] = None) -> Response:
    """The stream of ``job``'s states newer than ``seen`` (``last_seen``; 503 too_many_streams past
    TOONIFY_MAX_STREAMS); ``render``: the render options of the create this stream answers
    (app.api.views.as_requested)."""
    if job.finished and event_id(job.updated_at) <= seen:
        return Response(status_code=204)
    subscription = watcher.subscribe(job.id)
    return StreamingResponse(_stream(watcher, subscription, seen, render), status_code=status,
                             media_type="text/event-stream",
                             headers=dict(headers or {}, **{"Cache-Control": "no-cache"}))
