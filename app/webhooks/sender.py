"""The webhook sender: takes due deliveries from a job store's outbox (app.jobs.webhook_outbox) and POSTs each
as signed JSON, retrying with exponential back-off. Every API process runs one, whichever store it has; a
delivery is sent by whichever process takes it first, and one whose sender died is taken again when its lease
runs out. It wakes at once when its own process queues a delivery (the outbox's ``on_queued``) and looks for
those of other processes (Redis workers) every POLL_S, one store call each time.

Nothing here runs on the API's event loop: a thread with an event loop of its own sends, and one more thread
makes the store calls (so a slow store never stalls a send).

One slow receiver cannot delay another's webhooks. Each delivery is its own asyncio task (so a receiver that
never answers holds a socket, not a thread); each attempt is cut at SEND_TIMEOUT_S in total (DNS check,
connect, sending, status line and headers; the answer's body is never read, its status decides), by one
deadline around the whole attempt, not per socket read, so a receiver that trickles its answer is cut too.
Attempts are bounded twice: at most PER_DESTINATION (one) at once to one host:port, so a receiver that never
answers stalls only its own deliveries (which go in order, retries aside), and at most MAX_SENDING in all, so
sockets stay bounded. Slow receivers can delay others only when MAX_SENDING / PER_DESTINATION distinct
host:ports are held at once. A delivery waits for its destination's turn before it takes one of the
MAX_SENDING slots, so waiting holds no shared slot. The DNS check takes one of the sender's own MAX_SENDING
lookup threads (app.addresses.BoundedLookups; photo fetches have theirs); when hung lookups hold them all, the
attempt fails at once and is retried after its back-off. A process holds at most MAX_HELD deliveries; the rest wait
in the outbox, which costs no memory here.

Receivers verify ``X-Toonify-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body keyed with
``TOONIFY_WEBHOOK_SECRET``. Before each attempt the URL's host is resolved and checked again (app.addresses:
no private, loopback, link-local or reserved address unless ``TOONIFY_WEBHOOK_ALLOW_PRIVATE``), and the
attempt connects to the addresses checked; redirects are not followed."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

import h11

from ..addresses import BoundedLookups, LookupsBusy, default_port, open_checked, target_and_host
from ..config import Settings
from ..jobs.webhook_outbox import LEASE_S, Delivery, Outbox

log = logging.getLogger("toonify.webhooks")
POLL_S = 0.25  # how often the outbox is looked at for deliveries other processes queued
RENEW_EVERY_S = LEASE_S / 3
SEND_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
MAX_HELD = 1000
PER_DESTINATION = 1
MAX_SENDING = 64
READ_BYTES = 16 * 1024
MAX_HEADER_BYTES = 16 * 1024  # the status line and headers of an answer
FIELD = "webhook"

Render = Callable[[str, str], Optional[bytes]]  # (job id, event) → the body, None when the job is gone


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def destination(url: str) -> str:
    """host:port, the unit of fairness."""
    parts = urlsplit(url)
    return "%s:%d" % ((parts.hostname or "").lower(), default_port(parts))


def backoff_s(attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: 1, 2, 4 … s, at most BACKOFF_MAX_S."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempts - 1))


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
    def __init__(self, outbox: Outbox, render: Render, settings: Settings) -> None:
        self.outbox, self.render, self.settings = outbox, render, settings
        self._held: Dict[str, Delivery] = {}
        self._ready = threading.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tasks: Set[asyncio.Future] = set()
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="toonify-webhook-store")
        self._lookups = BoundedLookups(MAX_SENDING)
        self._sender = threading.Thread(target=self._send_loop, name="toonify-webhook-send", daemon=True)

    def start(self) -> None:
        self._sender.start()
        self._ready.wait()
        self.outbox.on_queued = self.wake

    def stop(self) -> None:
        """Deliveries in flight stay leased in the outbox: another process, or this one restarted, sends them
        once the lease runs out."""
        self.outbox.on_queued = lambda: None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def wake(self) -> None:
        """A delivery was queued by this process: look now (from any thread)."""
        try:
            self._loop.call_soon_threadsafe(self._queued.set)  # type: ignore[union-attr]
        except RuntimeError:  # the loop closed: the server is stopping
            pass

    def _send_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._lanes = Lanes(PER_DESTINATION, MAX_SENDING)  # bound to this loop (Python 3.7 binds at creation)
        self._queued = asyncio.Event()
        self._loop = loop
        self._ready.set()
        pump = loop.create_task(self._pump())
        try:
            loop.run_forever()
            for task in list(self._tasks) + [pump]:
                task.cancel()
            loop.run_until_complete(asyncio.gather(pump, *self._tasks, return_exceptions=True))
        finally:
            loop.close()
            self._store_thread.shutdown(wait=False)
            self._lookups.close()

    async def _store(self, call: Callable[..., Any], *args: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._store_thread, call, *args)

    async def _pump(self) -> None:
        """Take what is due whenever woken, or every POLL_S; renew the leases of what is held."""
        renewed = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self._queued.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
            self._queued.clear()
            try:
                await self._take()
                if self._held and time.monotonic() - renewed >= RENEW_EVERY_S:
                    renewed = time.monotonic()
                    await self._store(self.outbox.renew, list(self._held), time.time())
            except Exception:  # a store hiccup must not end the sender
                log.exception("webhook outbox unreachable")
                await asyncio.sleep(1)

    async def _take(self) -> None:
        room = MAX_HELD - len(self._held)
        if room <= 0:
            return
        for delivery in await self._store(self.outbox.take_due, room, time.time()):
            if delivery.id in self._held:  # its lease ran out while it waited for its destination here
                continue
            self._held[delivery.id] = delivery
            task = asyncio.ensure_future(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        """One attempt, then the delivery is settled in the outbox: removed, or due again after the back-off."""
        try:
            async with self._lanes.held(destination(delivery.url)):
                # made once its turn came, not before it waited: the job as it is when the call goes out
                body = await self._store(self.render, delivery.job_id, delivery.event)
                if body is None:
                    log.info("webhook %s of job %s dropped: the job is gone", delivery.event, delivery.job_id)
                    await self._store(self.outbox.remove, delivery)
                    return
                ok, reason = await self._attempt(delivery, body)
            attempts = delivery.attempts + 1
            if ok or attempts >= self.settings.webhook_attempts:
                if not ok:
                    log.warning("webhook %s to %s given up after %d attempts: %s", delivery.event,
                                urlsplit(delivery.url).hostname, attempts, reason)
                await self._store(self.outbox.remove, delivery)
            else:
                await self._store(self.outbox.retry_at, delivery, time.time() + backoff_s(attempts))
        except Exception:  # the store: the lease runs out and the delivery is taken again
            log.exception("webhook %s of job %s could not be settled", delivery.event, delivery.job_id)
        finally:
            self._held.pop(delivery.id, None)

    async def _attempt(self, delivery: Delivery, body: bytes) -> Tuple[bool, str]:
        """(acknowledged, what happened), within SEND_TIMEOUT_S for everything."""
        try:
            return await asyncio.wait_for(self._post(delivery, body), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            return False, "no answer within %g s" % SEND_TIMEOUT_S
        except h11.ProtocolError as exc:
            return False, "broken HTTP answer (%s)" % exc
        except (OSError, ValueError, LookupsBusy) as exc:  # ValueError: refused, a host name that is not valid
            return False, str(exc)

    async def _post(self, delivery: Delivery, body: bytes) -> Tuple[bool, str]:
        addresses = await self._lookups.checked(delivery.url, self.settings.webhook_allow_private, FIELD)
        parts = urlsplit(delivery.url)
        target, host = target_and_host(parts)
        reader, writer = await open_checked(parts, addresses)
        try:
            connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
            writer.write(connection.send(h11.Request(method="POST", target=target, headers=[
                ("Host", host), ("Content-Type", "application/json"), ("User-Agent", "toonify-webhook"),
                ("Content-Length", str(len(body))), ("Connection", "close"),
                ("X-Toonify-Event", delivery.event), ("X-Toonify-Attempt", str(delivery.attempts + 1)),
                ("X-Toonify-Signature", sign(self.settings.webhook_secret, body))])))
            writer.write(connection.send(h11.Data(data=body)))
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
