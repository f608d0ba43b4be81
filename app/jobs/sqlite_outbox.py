"""The SQLite store's webhook subscriptions and outbox (see app.jobs.webhook_outbox): two tables beside the
jobs, written by the store's own transactions through the functions below, so that an event is queued in the
transaction that records the change causing it."""
from __future__ import annotations

import sqlite3
from typing import Callable, ContextManager, List

from .job import TERMINAL, JobStatus
from .webhook_outbox import LEASE_S, SEPARATOR, Delivery, Webhook, delivery_from_id, events_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    job TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    progress_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job, url)
);
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (due_at);
CREATE TRIGGER IF NOT EXISTS webhooks_go_with_their_job AFTER DELETE ON jobs
BEGIN DELETE FROM webhooks WHERE job = old.id; DELETE FROM webhook_outbox WHERE job = old.id; END;
"""
_QUEUE = ("INSERT OR IGNORE INTO webhook_outbox (id, job, due_at) "
          "SELECT job || '{sep}' || url || '{sep}' || ?, job, ? FROM webhooks WHERE job = ? AND instr(events, ?) > 0"
          ).format(sep=SEPARATOR)


def queue_event(db: sqlite3.Connection, job_id: str, event: str, now: float) -> int:
    """Inside a transaction: ``event`` of the job to each URL subscribed to it; how many were queued."""
    return db.execute(_QUEUE, (event, now, job_id, "," + event + ",")).rowcount


def queue_progress(db: sqlite3.Connection, job_id: str, now: float, interval_s: float) -> int:
    """Inside a transaction: ``progress`` to the URLs that had none for ``interval_s``."""
    queued = db.execute(_QUEUE + " AND progress_at <= ?",
                        ("progress", now, job_id, ",progress,", now - interval_s)).rowcount
    if queued:
        db.execute("UPDATE webhooks SET progress_at = ? WHERE job = ? AND instr(events, ',progress,') > 0 "
                   "AND progress_at <= ?", (now, job_id, now - interval_s))
    return queued


def subscribe(db: sqlite3.Connection, job_id: str, webhook: Webhook, now: float) -> int:
    """Inside a transaction: ``webhook`` receives the job's events from now on (a URL subscribed already gets
    the events added), and at once the event the job's state already implies: ``start`` for a running job,
    ``completed`` for a finished one. How many deliveries were queued (none for a job that is gone)."""
    job = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if job is None:
        return 0
    row = db.execute("SELECT events FROM webhooks WHERE job = ? AND url = ?", (job_id, webhook.url)).fetchone()
    had = frozenset(row[0].strip(",").split(",")) if row is not None else frozenset()
    db.execute("INSERT OR REPLACE INTO webhooks (job, url, events, progress_at) VALUES (?, ?, ?, "
               "COALESCE((SELECT progress_at FROM webhooks WHERE job = ? AND url = ?), 0))",
               (job_id, webhook.url, events_text(had | webhook.events), job_id, webhook.url))
    event = "completed" if job[0] in TERMINAL else "start" if job[0] == JobStatus.RUNNING else None
    if event is None or event not in webhook.events:
        return 0
    return db.execute(_QUEUE + " AND url = ?", (event, now, job_id, "," + event + ",", webhook.url)).rowcount


class SqliteOutbox:
    """The Outbox (app.jobs.webhook_outbox) over the store's connection. ``on_queued`` is called after a
    transaction of this process queued a delivery (the sender sets it to wake itself)."""

    def __init__(self, query: Callable[..., List[sqlite3.Row]],
                 transaction: Callable[[], ContextManager[sqlite3.Connection]]) -> None:
        self._query, self._transaction = query, transaction
        self.on_queued: Callable[[], None] = lambda: None

    def take_due(self, limit: int, now: float) -> List[Delivery]:
        """One read when nothing is due (the poll); a write transaction only to lease what is."""
        if not self._query("SELECT 1 FROM webhook_outbox WHERE due_at <= ? LIMIT 1", (now,)):
            return []
        with self._transaction() as db:
            rows = db.execute("SELECT id, attempts FROM webhook_outbox WHERE due_at <= ? ORDER BY due_at, rowid "
                              "LIMIT ?", (now, limit)).fetchall()
            db.executemany("UPDATE webhook_outbox SET due_at = ? WHERE id = ?",
                           [(now + LEASE_S, row[0]) for row in rows])
        return [delivery_from_id(delivery_id, attempts) for delivery_id, attempts in rows]

    def renew(self, delivery_ids: List[str], now: float) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE webhook_outbox SET due_at = ? WHERE id = ?",
                           [(now + LEASE_S, delivery_id) for delivery_id in delivery_ids])

    def retry_at(self, delivery: Delivery, due_at: float) -> None:
        self._query("UPDATE webhook_outbox SET attempts = ?, due_at = ? WHERE id = ?",
                    (delivery.attempts + 1, due_at, delivery.id))

    def remove(self, delivery: Delivery) -> None:
        self._query("DELETE FROM webhook_outbox WHERE id = ?", (delivery.id,))

