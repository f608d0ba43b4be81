"""A bound on the request bodies held at once, across every request (TOONIFY_MAX_BODY_BYTES_IN_FLIGHT).

Each body is buffered whole before its route runs (app.api.middleware), and a route keeps it until it answers:
without a bound, many concurrent uploads waiting for the decode budget or for a queue place hold memory in
proportion to their number. A body is charged from its declared Content-Length before any of it is read (a
chunked body as its chunks arrive) and given back when its request has been answered. Only the event loop
touches the count, so it needs no lock."""
from __future__ import annotations

from ..errors import ServerBusy

RETRY_AFTER_S = 2  # bodies arrive within seconds on a working connection: try again soon


class BodiesInFlight:
    """Bytes of request bodies held now, against a limit."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit, self.held = limit_bytes, 0

    def busy(self) -> ServerBusy:
        return ServerBusy("the server is receiving too many uploads at once (%d MB held); send the request again "
                          "in %d s" % (self.held // 1_000_000, RETRY_AFTER_S), retry_after_s=RETRY_AFTER_S)

    def charge(self) -> "BodyCharge":
        return BodyCharge(self)


class BodyCharge:
    """One request's share of the bytes in flight: it grows as the body is read, and is given back once."""

    def __init__(self, pool: BodiesInFlight) -> None:
        self.pool, self.bytes = pool, 0

    def grow_to(self, nbytes: int) -> bool:
        """Hold ``nbytes`` in all for this request; False (holding no more than before) past the limit."""
        extra = nbytes - self.bytes
        if extra <= 0:
            return True
        if self.pool.held + extra > self.pool.limit:
            return False
        self.pool.held += extra
        self.bytes = nbytes
        return True

    def release(self) -> None:
        self.pool.held -= self.bytes
        self.bytes = 0
