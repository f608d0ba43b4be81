"""Pure ASGI middleware: request body limit enforced while streaming, optional API keys, request metrics."""
from __future__ import annotations

import json
import re
import secrets
from typing import Awaitable, Callable, FrozenSet, List

from ..metrics import Metrics
from .errors import STATUS_BY_CODE

OPEN_PATHS = ("/", "/healthz", "/readyz", "/metrics", "/config", "/docs", "/redoc", "/openapi.json")
OPEN_PREFIXES = ("/docs/assets/",)
DRAIN_BYTES = 256 * 1024 * 1024
_JOB_PATH = re.compile(r"^/jobs/[^/]+")


def route_label(path: str) -> str:
    return _JOB_PATH.sub("/jobs/{id}", path) if path.startswith("/jobs/") else path


async def _send_error(send: Callable[..., Awaitable[None]], code: str, message: str, headers: List = ()) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": STATUS_BY_CODE[code],
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")] + list(headers)})
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    def __init__(self, app, max_body_bytes: int, api_keys: FrozenSet[str], metrics: Metrics) -> None:
        self.app, self.max_body_bytes, self.api_keys, self.metrics = app, max_body_bytes, api_keys, metrics

    def _authorized(self, scope) -> bool:
        if not self.api_keys or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
            return True
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token and scope["method"] == "GET":  # EventSource and <img> cannot send headers
            match = re.search(r"(?:^|&)access_token=([^&]+)", scope.get("query_string", b"").decode("latin1"))
            token = match.group(1) if match else ""
        return any(secrets.compare_digest(token, key) for key in self.api_keys)

    async def _buffered_body(self, scope, receive, send):
        """Read the whole body up to the limit; None (after answering 413) when it is larger. Past the limit
        nothing is kept, but up to DRAIN_BYTES is read and dropped so that the client, still sending, gets
        to read the 413 instead of a reset connection."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = "the request is larger than %d MB; send a smaller photo" % (self.max_body_bytes // 1_000_000)
        over = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        chunks, size, more = [], 0, True
        while more and size <= (DRAIN_BYTES if over else self.max_body_bytes):
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            over = over or size > self.max_body_bytes
            if not over:
                chunks.append(chunk)
        if over or more:
            await _send_error(send, "upload_too_large", too_large)
            return None
        return b"".join(chunks)

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
            if not self._authorized(scope):
                await _send_error(send_and_record, "unauthorized",
                                  "this server needs an API key: send 'Authorization: Bearer <key>'",
                                  [(b"www-authenticate", b"Bearer")])
                return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body = await self._buffered_body(scope, receive, send_and_record)
                if body is None:
                    return
                replayed = {"done": False}

                async def replay():
                    if replayed["done"]:
                        return await receive()
                    replayed["done"] = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.app(scope, replay, send_and_record)
            else:
                await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(route_label(scope["path"]), scope["method"], str(status["code"])).inc()
