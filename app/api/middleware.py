"""Pure ASGI middleware in front of every route: limits on the request headers, authentication (app.api.auth),
the request body read within a size limit and a deadline (answered from the headers alone when the declared
length is over the limit, so that ``Expect: 100-continue`` gets its 413 at once), multipart forms parsed by the
strict guard (app.api.multipart_guard) so that no route ever hands a body to python-multipart, a bound on the
bodies held at once (app.api.inflight), and request metrics labelled by route template."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match

from ..errors import HeadersTooLarge, MalformedForm, RequestTimedOut, ToonifyError, UploadTooLarge
from ..metrics import Metrics
from .auth import Auth
from .errors import error_body, headers_of, status_of
from .inflight import BodiesInFlight, BodyCharge
from .multipart_guard import DEFAULT_LIMITS, FormLimits, boundary_of, parse_form

DRAIN_BYTES = 256 * 1024 * 1024
FORM_SCOPE_KEY = "toonify.form"
BODY_SCOPE_KEY = "toonify.body"
OWNER_SCOPE_KEY = "toonify.owner"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
MAX_HEADER_BYTES = 16 * 1024  # all header fields together; uvicorn's h11 is given the same limit (app.cli)
MAX_HEADER_FIELDS = 100  # browsers send about 20


def header_problem(scope) -> Optional[HeadersTooLarge]:
    """Headers past the limits: uvicorn only bounds headers that arrive in pieces, and never counts them."""
    headers = scope.get("headers") or []
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if len(headers) <= MAX_HEADER_FIELDS and size <= MAX_HEADER_BYTES:
        return None
    return HeadersTooLarge("the request has %d header fields (%d bytes); this server reads at most %d fields and "
                           "%d KB: send fewer or shorter headers" % (len(headers), size, MAX_HEADER_FIELDS,
                                                                     MAX_HEADER_BYTES // 1024))


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def expects_continue(scope) -> bool:
    """``Expect: 100-continue``: the client sends its body only once asked, which uvicorn does on the first
    receive(); a request refused from its headers alone must answer without receiving."""
    return dict(scope.get("headers") or []).get(b"expect", b"").lower() == b"100-continue"


def route_label(routes: Sequence[BaseRoute], scope) -> str:
    """The route template (``/jobs/{job_id}``), never the raw path: metric labels stay a fixed set."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", UNMATCHED)
        if match == Match.PARTIAL and partial is None:
            partial = getattr(route, "path", UNMATCHED)
    return partial or UNMATCHED


async def _send_error(send: Callable[..., Awaitable[None]], error: ToonifyError) -> None:
    """The answer app.api.errors gives, sent before any route runs (and the connection closed)."""
    body = json.dumps(error_body(error)).encode()
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers_of(error).items()]
    await send({"type": "http.response.start", "status": status_of(error),
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")] + headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class BodyLimits:
    """How large a request body may be, how long it may take to arrive, and what its form may hold."""

    max_bytes: int
    timeout_s: float
    in_flight_bytes: int  # of every request's body together (TOONIFY_MAX_BODY_BYTES_IN_FLIGHT)
    form: FormLimits = DEFAULT_LIMITS
    max_json_bytes: int = 0  # of a JSON body (a photo in base64 is a third larger); 0: max_bytes


class HeldBody:
    """A request's body as the middleware keeps it for the route, with its share of the bytes in flight.
    ``release()`` drops both (the parsed form too): a route that no longer needs the upload, e.g. once its job
    is created and it only waits for the result, frees its share for other uploads."""

    def __init__(self, scope, body: bytes, charge: BodyCharge) -> None:
        self.scope, self.body, self.charge = scope, body, charge

    def release(self) -> None:
        self.body = b""
        self.scope.pop(FORM_SCOPE_KEY, None)
        self.charge.release()


def release_body(scope) -> None:
    """Give back what the middleware holds of this request's body (nothing when it holds none)."""
    held = scope.get(BODY_SCOPE_KEY)
    if held is not None:
        held.release()


class ServiceMiddleware:
    def __init__(self, app, limits: BodyLimits, auth: Auth, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app, self.auth, self.metrics, self.routes = app, auth, metrics, routes
        self.max_body_bytes, self.body_timeout_s, self.form_limits = limits.max_bytes, limits.timeout_s, limits.form
        self.max_json_bytes = limits.max_json_bytes or limits.max_bytes
        self.in_flight = BodiesInFlight(limits.in_flight_bytes)
        metrics.body_bytes_in_flight.set_function(lambda: self.in_flight.held)

    async def _buffered_body(self, scope, receive, send, charge: BodyCharge) -> Optional[bytes]:
        """Read the whole body up to the limit and within the deadline; None (after answering) otherwise.
        Past the size limit nothing is kept, but up to DRAIN_BYTES is read and dropped so that the client,
        still sending, gets to read the 413 instead of a reset connection. The body is charged to the bytes
        in flight from its declared length before any of it is read (a chunked one as it arrives); past that
        bound nothing is kept and the answer is a 503 with Retry-After."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit = self.max_json_bytes if is_json(headers.get(b"content-type", b"").decode("latin-1")) \
            else self.max_body_bytes
        too_large = "the request is larger than %d MB; send a smaller photo" % (limit // 1_000_000)
        over = declared is not None and declared.isdigit() and int(declared) > limit
        if over and expects_continue(scope):
            await _send_error(send, UploadTooLarge(too_large))
            return None
        if not over and declared is not None and declared.isdigit() and not charge.grow_to(int(declared)):
            await self._refuse(scope, receive, send, self.in_flight.busy())
            return None
        deadline = time.monotonic() + self.body_timeout_s
        chunks, size, more = [], 0, True
        while more and size <= (DRAIN_BYTES if over else limit):
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                await _send_error(send, RequestTimedOut("the request body did not arrive within %d s; send it again "
                                                        "on a faster connection" % self.body_timeout_s))
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            over = over or size > limit
            if not over and not charge.grow_to(size):  # a chunked body, past the bytes in flight
                if more:
                    await self._drain(receive)
                await _send_error(send, self.in_flight.busy())
                return None
            if not over:
                chunks.append(chunk)
        if over or more:
            await _send_error(send, UploadTooLarge(too_large))
            return None
        return chunks[0] if len(chunks) == 1 else await run_in_threadpool(b"".join, chunks)

    async def _refuse(self, scope, receive, send, error: ToonifyError) -> None:
        """Answer ``error`` without using the body: drained first, unless the client waits for ``100 Continue``
        (then it has sent none)."""
        if not expects_continue(scope):
            await self._drain(receive)
        await _send_error(send, error)

    async def _drain(self, receive) -> None:
        """Read and drop a refused request's body (up to the size limit and deadline), so that a client still
        sending it reads the answer instead of a reset connection."""
        deadline, size, more = time.monotonic() + self.body_timeout_s, 0, True
        while more and size <= self.max_body_bytes:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                return
            size += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)

    async def _parse_form(self, scope, body: bytes) -> None:
        """Multipart bodies are parsed here, strictly and in a worker thread; routes read the parts from the
        scope."""
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
        if content_type.lower().startswith("multipart/"):
            boundary = boundary_of(content_type)
            scope[FORM_SCOPE_KEY] = await run_in_threadpool(parse_form, body, boundary, self.form_limits)

    async def _with_body(self, scope, receive, send) -> None:
        charge = self.in_flight.charge()
        try:
            body = await self._buffered_body(scope, receive, send, charge)
            if body is None:
                return
            held = scope[BODY_SCOPE_KEY] = HeldBody(scope, body, charge)
            del body
            try:
                await self._parse_form(scope, held.body)
            except MalformedForm as exc:
                await _send_error(send, exc)
                return
            replayed = {"done": False}

            async def replay():
                if replayed["done"]:
                    return await receive()
                replayed["done"] = True
                return {"type": "http.request", "body": held.body, "more_body": False}

            await self.app(scope, replay, send)
        finally:
            charge.release()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_and_record(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            problem = header_problem(scope)
            if problem is not None:
                await self._refuse(scope, receive, send_and_record, problem)
                return
            try:
                if not self.auth.ready:
                    await run_in_threadpool(self.auth.load)
                scope[OWNER_SCOPE_KEY] = self.auth.owner(scope)
            except ToonifyError as refused:  # no key, a bad signed link, or no secret yet (Redis down)
                await self._drain(receive)
                await _send_error(send_and_record, refused)
                return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                await self._with_body(scope, receive, send_and_record)
            else:
                await self.app(scope, receive, send_and_record)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.requests.labels(route_label(self.routes, scope), method, str(status["code"])).inc()
