"""uvicorn's h11 protocol with a deadline for request headers (slowloris).

uvicorn times out idle keep-alive connections, but a client that sends its headers a byte at a time keeps its
connection for ever. Here every request's headers must be complete within ``header_timeout_s`` of the
connection opening (or of the first byte after the previous response); the connection is closed otherwise.
The body has its own deadline in the ASGI middleware (TOONIFY_BODY_TIMEOUT_S).
"""
from __future__ import annotations

import asyncio
from typing import Optional

from uvicorn.protocols.http.h11_impl import H11Protocol


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


def header_deadline_protocol(header_timeout_s: float) -> type:
    """The protocol class to pass to uvicorn as ``http=``."""
    return type("HeaderDeadlineH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout_s": header_timeout_s})
