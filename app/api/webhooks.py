"""Webhooks: a job's ``start``, ``progress`` and ``completed`` events POSTed as signed JSON to the URL its
creator gave. Nothing here runs on the worker or the event loop: a watcher thread turns job state changes
into deliveries (at most one ``progress`` per ``webhook_progress_interval_s``), and sender threads deliver
them, retrying with exponential back-off. Subscriptions live in the process that accepted the job (a
restart forgets pending ones).

Receivers verify ``X-Toonify-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body keyed with
``TOONIFY_WEBHOOK_SECRET``. Only http(s) URLs are taken, and, unless ``TOONIFY_WEBHOOK_ALLOW_PRIVATE``,
none whose host resolves to a private, loopback, link-local or reserved address, also when it is written in an
IPv6 form that carries an IPv4 address (app.api.addresses; checked when the job is created and again before each
delivery; redirects are not followed)."""
from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Tuple
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import InvalidOption
from ..jobs.store import JobStore
from .addresses import AddressRefused, checked_addresses
from .views import job_view

log = logging.getLogger("toonify.webhooks")
WATCH_EVERY_S = 0.25
SEND_TIMEOUT_S = 10
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
MAX_PENDING = 10000
SENDERS = 4


WebhookRefused = AddressRefused  # the URL may not receive webhooks from this server


def check_url(url: str, allow_private: bool) -> None:
    """Raise WebhookRefused unless ``url`` is http(s) to a host that resolves to public addresses (or to any
    address when ``allow_private``). Blocks on DNS: call it off the event loop."""
    checked_addresses(url, allow_private, "webhook")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect could point anywhere, private addresses included: treat it as a failure


@dataclass
class Subscription:
    job_id: str
    url: str
    events: FrozenSet[str]
    started: bool = False
    last_step: int = -1
    last_progress_at: float = float("-inf")


@dataclass(order=True)
class Delivery:
    due: float
    number: int
    url: str = field(compare=False)
    event: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(default=1, compare=False)


class WebhookSender:
    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._subscriptions: Dict[str, Subscription] = {}
        self._pending: List[Delivery] = []
        self._numbers = 0
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._threads = [threading.Thread(target=self._watch, name="toonify-webhook-watch", daemon=True)] + [
            threading.Thread(target=self._send_loop, name="toonify-webhook-send-%d" % i, daemon=True)
            for i in range(SENDERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()

    def subscribe(self, job_id: str, url: str, events: FrozenSet[str]) -> None:
        with self._lock:
            self._subscriptions.setdefault(job_id, Subscription(job_id, url, events))

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
                subscriptions = list(self._subscriptions.values())
            for sub in subscriptions:
                try:
                    self._watch_one(sub)
                except Exception:  # a store hiccup must not end the watcher
                    log.exception("webhook watch of job %s failed", sub.job_id)

    def _watch_one(self, sub: Subscription) -> None:
        job = self.store.get(sub.job_id)
        if job is None:
            with self._lock:
                self._subscriptions.pop(sub.job_id, None)
            return
        events = self._events_for(sub, job)
        if events:
            view = job_view(job, self.store)
            for event in events:
                self._enqueue(sub.url, event, json.dumps({"event": event, "job": view}).encode())
        if job.finished:
            with self._lock:
                self._subscriptions.pop(sub.job_id, None)

    def _enqueue(self, url: str, event: str, body: bytes, attempt: int = 1, delay_s: float = 0.0) -> None:
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                log.warning("webhook backlog full: dropping a %s event for %s", event, urlsplit(url).hostname)
                return
            self._numbers += 1
            heapq.heappush(self._pending, Delivery(time.monotonic() + delay_s, self._numbers, url, event, body,
                                                   attempt))
            self._lock.notify()

    def _next_due(self) -> Optional[Delivery]:
        with self._lock:
            while not self._stopping.is_set():
                if self._pending and self._pending[0].due <= time.monotonic():
                    return heapq.heappop(self._pending)
                timeout = self._pending[0].due - time.monotonic() if self._pending else None
                self._lock.wait(timeout)
        return None

    def _send_loop(self) -> None:
        while True:
            delivery = self._next_due()
            if delivery is None:
                return
            ok, reason = self._post(delivery)
            if ok:
                continue
            if delivery.attempt >= self.settings.webhook_attempts:
                log.warning("webhook %s to %s given up after %d attempts: %s", delivery.event,
                            urlsplit(delivery.url).hostname, delivery.attempt, reason)
                continue
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (delivery.attempt - 1))
            self._enqueue(delivery.url, delivery.event, delivery.body, delivery.attempt + 1, delay)

    def _post(self, delivery: Delivery) -> Tuple[bool, str]:
        try:
            check_url(delivery.url, self.settings.webhook_allow_private)
            request = urllib.request.Request(delivery.url, data=delivery.body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "toonify-webhook",
                "X-Toonify-Event": delivery.event, "X-Toonify-Attempt": str(delivery.attempt),
                "X-Toonify-Signature": sign(self.settings.webhook_secret, delivery.body)})
            with self._opener.open(request, timeout=SEND_TIMEOUT_S) as response:
                return 200 <= response.status < 300, "HTTP %d" % response.status
        except urllib.error.HTTPError as exc:
            return False, "HTTP %d" % exc.code
        except (WebhookRefused, OSError, ValueError) as exc:
            return False, str(exc)


def refuse_bad_url(url: str, settings: Settings) -> None:
    """check_url with the API's error type (for the create call)."""
    try:
        check_url(url, settings.webhook_allow_private)
    except WebhookRefused as exc:
        raise InvalidOption(str(exc)) from None
