"""Latency claims that hold on a busy machine: a timing is compared with a baseline taken in the same test, under
the same load, never with an absolute figure (those belong in bench/)."""
from __future__ import annotations

import http.client
import time
from typing import List, Sequence

# How much slower than its baseline a loaded timing may be, and an additive floor for the scheduler's jitter:
# what a shared 2-core machine does to a sub-millisecond request when another process wakes up.
SLOWDOWN = 3.0
JITTER_S = 0.05


def percentile(timings: Sequence[float], fraction: float) -> float:
    ordered = sorted(timings)
    return ordered[int(fraction * (len(ordered) - 1))]


def healthz_timings(port: int, count: int = 100) -> List[float]:
    """``count`` sequential /healthz round trips on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            timings.append(time.perf_counter() - started)
    finally:
        connection.close()
    return timings


def assert_not_slower(loaded: Sequence[float], baseline: Sequence[float], fraction: float = 0.9) -> None:
    """The ``fraction`` percentile of ``loaded`` is within SLOWDOWN× that of ``baseline`` (plus JITTER_S)."""
    slow, base = percentile(loaded, fraction), percentile(baseline, fraction)
    assert slow <= SLOWDOWN * base + JITTER_S, "p%d %.4f s against a baseline of %.4f s" % (
        round(100 * fraction), slow, base)
