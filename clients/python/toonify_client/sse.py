"""Server-sent events parsed by hand: httpx has no SSE reader, and adding a dependency for twenty lines would
go against a client whose only dependency is httpx."""
from __future__ import annotations

from typing import Dict, Iterable, Iterator

FIELDS = ("event", "data", "id", "retry")


def parse_sse(lines: Iterable[str]) -> Iterator[Dict[str, str]]:
    """Events as dicts with ``event``, ``data`` and ``id`` (when the event has them); comments are skipped."""
    event: Dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data" and "data" in event:
            event["data"] += "\n" + value
        elif name in FIELDS:
            event[name] = value
