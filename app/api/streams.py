"""Server-sent event streams of jobs, fed by one shared poller.

However many clients watch, one task reads the watched jobs from the store (in a worker thread, all of them in
one call) a few times a second and hands each stream the job's latest view when it changed. Streams cost the
event loop nothing while idle, and their number is capped (a clear 503 beyond it).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from fastapi.concurrency import run_in_threadpool

from ..errors import TooManyStreams

log = logging.getLogger("toonify")
POLL_S = 0.2
KEEP_ALIVE_S = 15.0
View = Dict[str, Any]
GONE: View = {}  # the job was deleted or expired


class Subscription:
    """One stream's mailbox: only the newest view is kept (a slow client skips states, never piles them up)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.latest: Optional[View] = None
        self.changed = asyncio.Event()

    def put(self, view: View) -> None:
        self.latest = view
        self.changed.set()

    async def next(self, timeout_s: float) -> Optional[View]:
        """The next view, or None after ``timeout_s`` without a change (time for a keep-alive)."""
        try:
            await asyncio.wait_for(self.changed.wait(), timeout_s)
        except asyncio.TimeoutError:
            return None
        self.changed.clear()
        return self.latest


class JobWatcher:
    def __init__(self, read_views: Callable[[List[str]], Dict[str, View]], max_streams: int) -> None:
        """``read_views(ids)``: the current view of each job that still exists (blocking; runs in a thread)."""
        self.read_views, self.max_streams = read_views, max_streams
        self._streams: Dict[str, Set[Subscription]] = {}
        self._last: Dict[str, Tuple] = {}
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task] = None

    @property
    def count(self) -> int:
        return sum(len(subs) for subs in self._streams.values())

    def start(self) -> None:
        self._task = asyncio.get_event_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def subscribe(self, job_id: str) -> Subscription:
        if self.count >= self.max_streams:
            raise TooManyStreams("%d event streams are open already; poll GET /jobs/%s instead, or try again later"
                                 % (self.max_streams, job_id), retry_after_s=5)
        subscription = Subscription(job_id)
        self._streams.setdefault(job_id, set()).add(subscription)
        self._last.pop(job_id, None)  # the next round sends the current state to every stream of the job
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._streams.get(subscription.job_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._streams[subscription.job_id]
                self._last.pop(subscription.job_id, None)

    def _publish(self, views: Dict[str, View]) -> None:
        for job_id, subs in list(self._streams.items()):
            view = views.get(job_id, GONE)
            preview = view.get("preview") or {}
            state = ((view.get("status"), view.get("stage"), view.get("step"), preview.get("step"),
                      len(preview.get("faces", ()))) if view else ("gone",))
            if self._last.get(job_id) != state:
                self._last[job_id] = state
                for subscription in subs:
                    subscription.put(view)

    async def _run(self) -> None:
        while True:
            if not self._streams:
                self._wake.clear()
                await self._wake.wait()
            try:
                self._publish(await run_in_threadpool(self.read_views, list(self._streams)))
            except Exception:  # the store is briefly unreachable: keep the streams, try again
                log.exception("reading watched jobs failed")
            await asyncio.sleep(POLL_S)
