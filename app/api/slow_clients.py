"""uvicorn's h11 protocol with a deadline for request headers (slowloris), and a 431 for headers too large.

uvicorn times out idle keep-alive connections, but a client that sends its headers a byte at a time keeps its
connection for ever. Here every request's headers must be complete within ``header_timeout_s`` of the
connection opening (or of the first byte after the previous response); the connection is closed otherwise.
The body has its own deadline in the ASGI middleware (TOONIFY_BODY_TIMEOUT_S).

h11 refuses headers that grow past its limit while incomplete (uvicorn's ``h11_max_incomplete_event_size``),
and uvicorn answers that with a bare 400; here it is the 431 (with the API's error body) that h11 itself
suggests. Headers that arrive whole are counted and measured in the ASGI middleware (app.api.middleware).
"""
from __future__ import annotations

import asyncio
import json
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import HeadersTooLarge
from .errors import error_body, status_of
from .middleware import MAX_HEADER_BYTES


class HeaderDeadlineH11Protocol(H11Protocol):
    header_timeout_s = 10.0
    _deadline: Optional[asyncio.TimerHandle] = None

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_headers():
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        limit = self.config.h11_max_incomplete_event_size or MAX_HEADER_BYTES
        if len(self.conn.trailing_data[0]) <= limit:
            super().send_400_response(msg)
            return
        error = HeadersTooLarge("the request headers are longer than %d KB; send fewer or shorter headers"
                                % (limit // 1024))
        body = json.dumps(error_body(error)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=status_of(error), headers=headers), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def header_deadline_protocol(header_timeout_s: float) -> type:
    """The protocol class to pass to uvicorn as ``http=``."""
    return type("HeaderDeadlineH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout_s": header_timeout_s})
