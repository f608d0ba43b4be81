"""Who watches a job (its event streams, the requests waiting for it), told of its changes by the store's change
feed (app.jobs.feed) instead of polling.

However many clients watch a job, its view is read once per change: the feed says which jobs changed, one task
reads the watched ones among them (in a worker thread, all of them in one call, at most once per GAP_S) and
hands every subscription of the job that view. A new subscription to a job watched already gets the view held
in memory, without a read. Nothing is read while nothing changes, except a safety re-read of the watched jobs
every SAFETY_S, for what no feed announces (a Redis job expiring after its TTL, a message lost while the
subscriber reconnected). Streams cost the event loop nothing while idle, and their number is capped (a clear
503 beyond it); waiting requests are not counted in that cap (each one made its own upload).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import suppress
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from fastapi.concurrency import run_in_threadpool

from ..errors import TooManyStreams
from ..jobs.feed import EVERYTHING, Changed
from ..jobs.job import Job
from ..jobs.store import JobStore

log = logging.getLogger("toonify")
KEEP_ALIVE_S = 15.0
GAP_S = 0.2  # between two reads: a job that changes faster is read (and its streams sent) 5 times a second, as
# often as the poller before the feed looked, so a waiting request hears its job end as soon as it did
SAFETY_S = 5.0
RETRY_S = 1.0  # after a failed read (the store briefly unreachable)
View = Dict[str, Any]
GONE: View = {}  # the job was deleted or expired


class Subscription:
    """One watcher's mailbox: only the newest view is kept (a slow client skips states, never piles them up),
    with the job it was made from and its JSON (encoded once for every stream, in the reading thread)."""

    def __init__(self, job_id: str, stream: bool) -> None:
        self.job_id, self.stream = job_id, stream
        self.latest: Optional[View] = None
        self.job: Optional[Job] = None  # None once the job is gone
        self.text = ""  # the latest view as JSON
        self.changed = asyncio.Event()

    def put(self, held: "Held") -> None:
        self.job, self.latest, self.text = held.job, held.view, held.text
        self.changed.set()

    async def next(self, timeout_s: float) -> Optional[View]:
        """The next view, or None after ``timeout_s`` without a change (time for a keep-alive)."""
        try:
            await asyncio.wait_for(self.changed.wait(), timeout_s)
        except asyncio.TimeoutError:
            return None
        self.changed.clear()
        return self.latest


class Held(NamedTuple):
    """The latest view of a watched job, and what tells it from the next (a safety re-read finds it unchanged)."""

    state: Tuple
    job: Optional[Job]
    view: View
    text: str


def _state(view: View) -> Tuple:
    if view is GONE:
        return ("gone",)
    preview = view.get("preview") or {}
    return view["status"], view["stage"], view["step"], preview.get("step"), len(preview.get("faces", ()))


class JobWatcher:
    def __init__(self, store: JobStore, view_of: Callable[[Job], View], max_streams: int) -> None:
        """``view_of(job)``: the job's view as its streams send it (blocking; runs in a thread)."""
        self.store, self.view_of, self.max_streams = store, view_of, max_streams
        self.count = 0  # event streams open (waiting requests are not counted)
        self._subscriptions: Dict[str, Set[Subscription]] = {}
        self._held: Dict[str, Held] = {}
        self._dirty: Set[str] = set()  # watched jobs that changed since they were last read
        self._wake = asyncio.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._loop = asyncio.get_event_loop()
        self._task = self._loop.create_task(self._run())
        self.store.changes.listen(self._heard)

    def stop(self) -> None:
        self.store.changes.unlisten(self._heard)
        if self._task is not None:
            self._task.cancel()

    def subscribe(self, job_id: str, stream: bool = True) -> Subscription:
        """``stream``: an event stream, counted against TOONIFY_MAX_STREAMS; else a waiting request."""
        if stream and self.count >= self.max_streams:
            raise TooManyStreams("%d event streams are open already; poll GET /jobs/%s instead, or try again later"
                                 % (self.max_streams, job_id), retry_after_s=5)
        subscription = Subscription(job_id, stream)
        self._subscriptions.setdefault(job_id, set()).add(subscription)
        self.count += stream
        held = self._held.get(job_id)
        if held is None:
            self._mark(frozenset((job_id,)))
        else:
            subscription.put(held)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._subscriptions.get(subscription.job_id)
        if subs is None or subscription not in subs:
            return
        subs.discard(subscription)
        self.count -= subscription.stream
        if not subs:
            del self._subscriptions[subscription.job_id]
            self._held.pop(subscription.job_id, None)

    def _heard(self, changed: Changed) -> None:
        """On the feed's thread: hand the news to the event loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._mark, changed)

    def _mark(self, changed: Changed) -> None:
        watched = self._subscriptions.keys()
        dirty = set(watched) if changed is EVERYTHING else watched & changed
        if dirty:
            self._dirty |= dirty
            self._wake.set()

    def _read(self, job_ids: List[str]) -> Dict[str, Held]:
        """The current view of each job that still exists (blocking: runs in a thread)."""
        read = {}
        for job_id in job_ids:
            job = self.store.get(job_id)
            if job is not None:
                view = self.view_of(job)
                read[job_id] = Held(_state(view), job, view, json.dumps(view))
        return read

    def _publish(self, job_ids: List[str], read: Dict[str, Held]) -> None:
        for job_id in job_ids:
            subs = self._subscriptions.get(job_id)
            now = read.get(job_id, Held(_state(GONE), None, GONE, "{}"))
            held = self._held.get(job_id)
            if subs and (held is None or held.state != now.state):
                self._held[job_id] = now
                for subscription in subs:
                    subscription.put(now)

    async def _run(self) -> None:
        safety_at = time.monotonic() + SAFETY_S
        while True:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(safety_at - time.monotonic(), 0))
            if time.monotonic() >= safety_at:  # every SAFETY_S, however busy other jobs keep the feed
                self._mark(EVERYTHING)
                safety_at = time.monotonic() + SAFETY_S
            self._wake.clear()
            job_ids = [job_id for job_id in self._dirty if job_id in self._subscriptions]
            self._dirty.clear()
            if not job_ids:
                continue
            try:
                self._publish(job_ids, await run_in_threadpool(self._read, job_ids))
            except Exception:  # the store is briefly unreachable: keep the streams, try again
                log.exception("reading watched jobs failed")
                self._mark(frozenset(job_ids))
                await asyncio.sleep(RETRY_S)
            await asyncio.sleep(GAP_S)
