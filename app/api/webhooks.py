"""Webhooks: a job's ``start``, ``progress`` and ``completed`` events POSTed as signed JSON to the URL its
creator gave; every create that names a URL gets its calls, a create answered by an earlier job (a cache hit)
included: subscriptions are per job and URL. Nothing here runs on the worker or the API's event loop: a
watcher thread turns job state changes into deliveries (at most one ``progress`` per
``webhook_progress_interval_s``), and a sender thread with an event loop of its own delivers them, retrying
with exponential back-off. Subscriptions live in the process that accepted the job (a restart forgets pending
ones).

One slow receiver cannot delay another's webhooks. Each delivery is its own asyncio task (so a receiver that
never answers holds a socket, not a thread); each attempt is cut at SEND_TIMEOUT_S in total (DNS check,
connect, sending, status line and headers; the answer's body is never read, its status decides), by one
deadline around the whole attempt, not per socket read, so a receiver that trickles its answer is cut too.
Attempts are bounded twice: at most PER_DESTINATION (one) at once to one host:port, so a receiver that never
answers stalls only its own deliveries (which arrive in order, retries aside), and at most MAX_SENDING in all,
so sockets stay bounded. Slow receivers can delay others only when MAX_SENDING / PER_DESTINATION distinct
host:ports are held at once. A delivery waits for its destination's turn before it takes one of the MAX_SENDING
slots, so waiting holds no shared slot; the DNS check has a thread per attempt in flight. Deliveries waiting or
backing off are bounded by MAX_PENDING, subscriptions by MAX_SUBSCRIPTIONS.

Receivers verify ``X-Toonify-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body keyed with
``TOONIFY_WEBHOOK_SECRET``. Only http(s) URLs are taken, and, unless ``TOONIFY_WEBHOOK_ALLOW_PRIVATE``,
none whose host resolves to a private, loopback, link-local or reserved address, also when it is written in an
IPv6 form that carries an IPv4 address (app.api.addresses; checked when the job is created and again before each
attempt, which then connects to the addresses checked; redirects are not followed)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, FrozenSet, List, Optional, Set, Tuple
from urllib.parse import urlsplit

import h11

from ..config import Settings
from ..errors import InvalidOption, QueueFull
from ..jobs.store import JobStore
from .addresses import AddressRefused, checked_addresses, default_port, open_checked, target_and_host
from .views import job_view

log = logging.getLogger("toonify.webhooks")
WATCH_EVERY_S = 0.25
SEND_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
MAX_PENDING = 10000
MAX_SUBSCRIPTIONS = 10000
PER_DESTINATION = 1
MAX_SENDING = 64
DNS_THREADS = MAX_SENDING  # one lookup per attempt in flight: a slow name server stalls no other attempt
READ_BYTES = 16 * 1024
MAX_HEADER_BYTES = 16 * 1024  # the status line and headers of an answer
FIELD = "webhook"


WebhookRefused = AddressRefused  # the URL may not receive webhooks from this server


def check_url(url: str, allow_private: bool) -> None:
    """Raise WebhookRefused unless ``url`` is http(s) to a host that resolves to public addresses (or to any
    address when ``allow_private``). Blocks on DNS: call it off the event loop."""
    checked_addresses(url, allow_private, FIELD)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def destination(url: str) -> str:
    """host:port, the unit of fairness."""
    parts = urlsplit(url)
    return "%s:%d" % ((parts.hostname or "").lower(), default_port(parts))


@dataclass
class Subscription:
    job_id: str
    url: str
    events: FrozenSet[str]
    started: bool = False
    last_step: int = -1
    last_progress_at: float = float("-inf")


@dataclass
class Delivery:
    url: str
    event: str
    body: bytes


class Lanes:
    """At most ``per_lane`` holders at once per key and ``total`` in all; a key's entry lives while it is used,
    so memory follows the deliveries in flight. Made and used on the sender's event loop only."""

    def __init__(self, per_lane: int, total: int) -> None:
        self.per_lane = per_lane
        self.total = asyncio.Semaphore(total)
        self.lanes: Dict[str, Tuple[asyncio.Semaphore, List[int]]] = {}

    @asynccontextmanager
    async def held(self, key: str) -> AsyncIterator[None]:
        lane, users = self.lanes.setdefault(key, (asyncio.Semaphore(self.per_lane), [0]))
        users[0] += 1
        try:
            async with lane:  # the destination first: waiting for its own turn holds no shared slot
                async with self.total:
                    yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self.lanes[key]


class WebhookSender:
    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._subscriptions: Dict[Tuple[str, str], Subscription] = {}
        self._pending = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tasks: Set[asyncio.Future] = set()
        self._dns = ThreadPoolExecutor(DNS_THREADS, thread_name_prefix="toonify-webhook-dns")
        self._sender = threading.Thread(target=self._send_loop, name="toonify-webhook-send", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="toonify-webhook-watch", daemon=True)

    def start(self) -> None:
        self._sender.start()
        self._ready.wait()
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def subscribe(self, job_id: str, url: str, events: FrozenSet[str]) -> None:
        """Send this job's ``events`` to ``url`` (a second create naming the same URL adds its events to the
        first's; one naming another URL gets its own calls). QueueFull past MAX_SUBSCRIPTIONS."""
        with self._lock:
            sub = self._subscriptions.get((job_id, url))
            if sub is not None:
                sub.events = sub.events | events
                return
            if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
                raise QueueFull("%s: the server holds as many pending webhooks as it may; try again later, or "
                                "leave out the webhook and poll GET /jobs/ID" % FIELD, retry_after_s=10)
            self._subscriptions[(job_id, url)] = Subscription(job_id, url, events)

    def _events_for(self, sub: Subscription, job: Any) -> List[str]:
        """The events this state change produces, updating what the subscription has seen."""
        events = []
        if job.status != "queued" and not sub.started:
            sub.started = True
            if not job.finished:
                events.append("start")
        now = time.monotonic()
        if (job.status == "running" and job.step > 0 and job.step != sub.last_step
                and now - sub.last_progress_at >= self.settings.webhook_progress_interval_s):
            sub.last_step, sub.last_progress_at = job.step, now
            events.append("progress")
        if job.finished:
            events.append("completed")
        return [event for event in events if event in sub.events]

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_EVERY_S):
            with self._lock:
                by_job: Dict[str, List[Subscription]] = {}
                for sub in self._subscriptions.values():
                    by_job.setdefault(sub.job_id, []).append(sub)
            for job_id, subs in by_job.items():
                try:
                    self._watch_job(job_id, subs)
                except Exception:  # a store hiccup must not end the watcher
                    log.exception("webhook watch of job %s failed", job_id)

    def _watch_job(self, job_id: str, subs: List[Subscription]) -> None:
        """One store read per job, however many subscriptions it has."""
        job = self.store.get(job_id)
        view: Optional[Dict[str, Any]] = None
        for sub in subs:
            events = self._events_for(sub, job) if job is not None else []
            if events and view is None:
                view = job_view(job, self.store).as_json()
            for event in events:
                self._enqueue(Delivery(sub.url, event, json.dumps({"event": event, "job": view}).encode()))
            if job is None or job.finished:
                with self._lock:
                    self._subscriptions.pop((job_id, sub.url), None)

    def _enqueue(self, delivery: Delivery) -> None:
        with self._lock:
            if self._pending >= MAX_PENDING:
                log.warning("webhook backlog full: dropping a %s event for %s", delivery.event,
                            urlsplit(delivery.url).hostname)
                return
            self._pending += 1
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._spawn, delivery)
        except RuntimeError:  # the loop closed: the server is stopping
            with self._lock:
                self._pending -= 1

    def _send_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._lanes = Lanes(PER_DESTINATION, MAX_SENDING)  # bound to this loop (Python 3.7 binds at creation)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
            for task in list(self._tasks):
                task.cancel()
            loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
        finally:
            loop.close()
            self._dns.shutdown(wait=False)

    def _spawn(self, delivery: Delivery) -> None:
        task = asyncio.ensure_future(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        """Every attempt of one delivery, with back-off between them."""
        try:
            for attempt in range(1, self.settings.webhook_attempts + 1):
                async with self._lanes.held(destination(delivery.url)):
                    ok, reason = await self._attempt(delivery, attempt)
                if ok:
                    return
                if attempt < self.settings.webhook_attempts:
                    await asyncio.sleep(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))
            log.warning("webhook %s to %s given up after %d attempts: %s", delivery.event,
                        urlsplit(delivery.url).hostname, self.settings.webhook_attempts, reason)
        finally:
            with self._lock:
                self._pending -= 1

    async def _attempt(self, delivery: Delivery, attempt: int) -> Tuple[bool, str]:
        """(acknowledged, what happened), within SEND_TIMEOUT_S for everything."""
        try:
            return await asyncio.wait_for(self._post(delivery, attempt), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            return False, "no answer within %g s" % SEND_TIMEOUT_S
        except h11.ProtocolError as exc:
            return False, "broken HTTP answer (%s)" % exc
        except (OSError, ValueError) as exc:  # ValueError: WebhookRefused, a host name that is not valid
            return False, str(exc)

    async def _post(self, delivery: Delivery, attempt: int) -> Tuple[bool, str]:
        assert self._loop is not None
        addresses = await self._loop.run_in_executor(
            self._dns, checked_addresses, delivery.url, self.settings.webhook_allow_private, FIELD)
        parts = urlsplit(delivery.url)
        target, host = target_and_host(parts)
        reader, writer = await open_checked(parts, addresses)
        try:
            connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
            writer.write(connection.send(h11.Request(method="POST", target=target, headers=[
                ("Host", host), ("Content-Type", "application/json"), ("User-Agent", "toonify-webhook"),
                ("Content-Length", str(len(delivery.body))), ("Connection", "close"),
                ("X-Toonify-Event", delivery.event), ("X-Toonify-Attempt", str(attempt)),
                ("X-Toonify-Signature", sign(self.settings.webhook_secret, delivery.body))])))
            writer.write(connection.send(h11.Data(data=delivery.body)))
            writer.write(connection.send(h11.EndOfMessage()))
            await writer.drain()
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(READ_BYTES))
                elif isinstance(event, h11.Response):  # redirects are failures: a Location could be private
                    return 200 <= event.status_code < 300, "HTTP %d" % event.status_code
                elif isinstance(event, h11.ConnectionClosed):
                    return False, "the receiver closed the connection without answering"
        finally:
            writer.close()


def refuse_bad_url(url: str, settings: Settings) -> None:
    """check_url with the API's error type (for the create call)."""
    try:
        check_url(url, settings.webhook_allow_private)
    except WebhookRefused as exc:
        raise InvalidOption(str(exc)) from None
