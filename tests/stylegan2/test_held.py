"""The bounded set that holds style generators (issue 26.5): least recently used dropped first, pinned never."""
from __future__ import annotations

import pytest

from stylegan2.held import LeastRecentlyUsed


def test_least_recently_used_is_dropped_and_pinned_ones_never():
    built = []
    held = LeastRecentlyUsed(2, lambda key: built.append(key) or key.upper(), {"pin": "PIN"})
    assert [held.get(key) for key in ("a", "b", "a", "c", "pin", "b")] == ["A", "B", "A", "C", "PIN", "B"]
    assert built == ["a", "b", "c", "b"]  # c dropped b (a was used later); b dropped a
    assert held.held == ["pin", "c", "b"]


def test_no_bound_holds_everything_and_warm_stops_at_the_bound():
    everything = LeastRecentlyUsed(0, str.upper, {})
    everything.warm("abcdef")
    assert everything.held == list("abcdef") and everything.builds == 6
    bounded = LeastRecentlyUsed(2, str.upper, {})
    bounded.warm("abcdef")
    assert bounded.held == ["a", "b"]
    with pytest.raises(ValueError):
        LeastRecentlyUsed(-1, str.upper, {})
