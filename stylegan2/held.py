"""A bounded set of values built on demand, least recently used dropped first (issue 26.5): the style generators a
device holds at once. The weights of a dropped style stay on the host, so building it again costs one weight
conversion, not a pickle read."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Dict, Generic, Iterable, List, TypeVar

T = TypeVar("T")


class LeastRecentlyUsed(Generic[T]):
    """At most ``bound`` values of ``build(key)`` held at once (0: no bound). Pinned values are always held and
    never counted: the default toon is rendered by every job that names no style."""

    def __init__(self, bound: int, build: Callable[[str], T], pinned: Dict[str, T]) -> None:
        if bound < 0:
            raise ValueError("the bound must be 0 (none) or more; got %d" % bound)
        self.bound, self._build, self._pinned = bound, build, dict(pinned)
        self._held: "OrderedDict[str, T]" = OrderedDict()
        self._lock = threading.Lock()  # renders come from the API's threads and the worker's at once
        self.builds = 0

    def get(self, key: str) -> T:
        """The value of ``key``, built (after dropping the least recently used one when full) if not held."""
        if key in self._pinned:
            return self._pinned[key]
        with self._lock:
            if key in self._held:
                self._held.move_to_end(key)
                return self._held[key]
            if self.bound and len(self._held) >= self.bound:
                self._held.popitem(last=False)  # a render still using it keeps it alive until it returns
            value = self._build(key)
            self.builds += 1
            self._held[key] = value
            return value

    def warm(self, keys: Iterable[str]) -> None:
        """Build ``keys`` in order until the bound is reached (at setup: the first styles are ready at once)."""
        for key in keys:
            if self.bound and len(self._held) >= self.bound:
                return
            self.get(key)

    @property
    def held(self) -> List[str]:
        """The keys held now, pinned first, then least recently used first."""
        with self._lock:
            return list(self._pinned) + list(self._held)
