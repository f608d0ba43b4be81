"""HTTP semantics FastAPI leaves out: HEAD answered wherever GET is (same status and headers, no body)."""
from __future__ import annotations


class HeadAsGet:
    """Pure ASGI: a HEAD request is routed as a GET; the server (uvicorn still sees HEAD) sends no body.
    The handler stops at its first body chunk, so a HEAD on an event stream ends at once."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = {"body": False}

        async def headers_only(message) -> None:
            if finished["body"]:
                return
            if message["type"] == "http.response.body":
                finished["body"] = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, headers_only)
