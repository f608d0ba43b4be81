"""Requests that the server's shutdown cuts off answer 503, like every request that waits at SIGTERM.

uvicorn gives open requests a grace period (half of TOONIFY_SHUTDOWN_TIMEOUT_S) and then cancels them: an
upload still arriving by then, or still being admitted, would end in a CancelledError — a 500 with a traceback
on Python 3.7, where CancelledError is an Exception, a connection closed without an answer on later Pythons
(whose uvicorn ends the process right after the app's shutdown). Here such a request answers 503
``shutting_down`` (try again shortly), and the app's shutdown waits until those answers are sent."""
from __future__ import annotations

import asyncio
import threading
from typing import Set

from ..errors import ShuttingDown
from .errors import error_response

RETRY_AFTER_S = 10


class OpenRequests:
    """The requests being answered now (their tasks)."""

    def __init__(self) -> None:
        self.tasks: Set["asyncio.Task[None]"] = set()

    async def settled(self, timeout_s: float) -> None:
        """Once uvicorn has cancelled what was left open: wait (at most ``timeout_s``) until each has answered."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout_s)


class AnswerCutOffRequests:
    """Pure ASGI middleware, the outermost of the app's own (inside Starlette's ServerErrorMiddleware, which
    would otherwise answer the cancellation with a 500 on Python 3.7)."""

    def __init__(self, app, draining: threading.Event, open_requests: OpenRequests) -> None:
        """``draining``: set on SIGTERM (Service.draining); only then is a cancellation the shutdown's."""
        self.app, self.draining, self.open = app, draining, open_requests

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        self.open.tasks.add(task)
        answered = False

        async def send_and_note(message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            if answered or not self.draining.is_set():
                raise
            # the cancellation ends here: answering is this request's last act, and the server is exiting
            await error_response(ShuttingDown("the server is restarting; send the request again shortly",
                                              retry_after_s=RETRY_AFTER_S))(scope, receive, send)
        finally:
            self.open.tasks.discard(task)
