"""Webhook subscriptions and their outbox: what both job stores keep so that a job's webhooks survive the
process that accepted it.

A subscription (job, URL, events) is written with the job (or, for a create answered by an earlier job, with
that create's lookup). The state changes that make an event (``start`` on the first claim, ``completed`` when
the job ends, ``progress`` at most once per interval) add a delivery to the outbox in the same transaction (a
SQLite transaction, a Redis Lua script), so an event is queued if and only if the change is recorded.

A delivery's id is job, URL and event: the same event to the same URL is queued once, and a ``progress`` that
is still pending or being sent absorbs later ones (coalesced). Its due time doubles as its lease: taking a
delivery moves its due time LEASE_S ahead, a sender renews that while it holds the delivery, and a delivery
whose sender died is due again when the lease runs out, for any process to take. The body is made when the
delivery is sent, from the job as it is then (for ``completed``, its final state)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, FrozenSet, List

from typing_extensions import Protocol

LEASE_S = 30.0  # a taken delivery is due again this long after its sender last renewed it
SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Webhook:
    """A create's request for its job's ``events`` at ``url``."""

    url: str
    events: FrozenSet[str]


def events_text(events: FrozenSet[str]) -> str:
    """",start,completed,": a subscription's events as stored, each found by a substring test in SQL or Lua."""
    return "," + ",".join(sorted(events)) + ","


@dataclass(frozen=True)
class Delivery:
    """One event to send to one URL; ``attempts``: the attempts made so far."""

    id: str
    job_id: str
    url: str
    event: str
    attempts: int


def delivery_from_id(delivery_id: str, attempts: int) -> Delivery:
    """The job id and the event hold no SEPARATOR; the URL between them is taken whole, whatever it holds."""
    job_id, rest = delivery_id.split(SEPARATOR, 1)
    url, event = rest.rsplit(SEPARATOR, 1)
    return Delivery(delivery_id, job_id, url, event, attempts)


class Outbox(Protocol):
    """The deliveries a store has queued, as the webhook sender (app.webhooks.sender) takes and settles them.
    ``on_queued`` is called after this process queued one (the sender sets it to wake itself)."""

    on_queued: Callable[[], None]

    def take_due(self, limit: int, now: float) -> List[Delivery]:
        """Up to ``limit`` deliveries due at ``now`` (oldest first), each leased for LEASE_S."""

    def renew(self, delivery_ids: List[str], now: float) -> None:
        """Extend the leases of deliveries still being sent."""

    def retry_at(self, delivery: Delivery, due_at: float) -> None:
        """An attempt failed: one more attempt made, the next due at ``due_at`` (to any process)."""

    def remove(self, delivery: Delivery) -> None:
        """Delivered, or given up."""
