"""Where a start's seconds go: the code that does each costly part names it as a phase, and whoever wants the
figures (Toonify.setup for its log line and /readyz, bench/startup.py) records the phases its thread runs.
Nobody recording: a phase costs one attribute lookup."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator

_current = threading.local()

# The phases named by the library and the app, in the order a start meets them.
FRAMEWORK_IMPORT = "framework import"
PICKLE_READ = "pickle read"
WEIGHT_CONVERSION = "weight conversion"
GRAPH_BUILD = "graph build"
MODEL_DIGEST = "model digest"
W_STATISTICS = "w statistics"
WARM_UP = "warm-up"
PROJECTOR_BUILD = "projector build"


@contextmanager
def recording() -> Iterator[Dict[str, float]]:
    """Seconds per phase run by this thread inside the block (a phase met twice adds up), in the dict yielded.
    Phases do not nest: each names a part no other phase contains."""
    outer = getattr(_current, "seconds", None)
    seconds: Dict[str, float] = {}
    _current.seconds = seconds
    try:
        yield seconds
    finally:
        _current.seconds = outer


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as ``name`` when this thread is recording."""
    seconds = getattr(_current, "seconds", None)
    if seconds is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


def summary(seconds: Dict[str, float], top: int = 4) -> str:
    """The largest phases, for a log line: 'warm-up 4.6 s, pickle read 2.1 s, …'."""
    largest = sorted(seconds.items(), key=lambda item: -item[1])[:top]
    return ", ".join("%s %.1f s" % (name, value) for name, value in largest)
