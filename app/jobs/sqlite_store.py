"""SQLite (WAL) job table + a folder per job. Survives restarts: queued jobs stay queued, a job that was
running is re-queued (up to its attempt limit), finished results stay until their TTL."""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from ..errors import IdempotencyConflict
from ..storage import SpaceReserve, is_out_of_space, storage_full_from, write_atomically
from . import sqlite_outbox
from .feed import SQLITE_SCHEMA, SqliteChangeFeed
from .job import (
    LATENTS,
    PHOTO,
    PREVIEW_FILES,
    RESERVATION_TTL_S,
    UPLOAD,
    IdempotencyKey,
    Job,
    JobCounts,
    NewJob,
    worker_lost_message,
)
from .sqlite_outbox import SqliteOutbox, queue_event, queue_progress, subscribe
from .webhook_outbox import Webhook

log = logging.getLogger("toonify.store")
ORPHAN_AGE_S = 300  # a folder without a row this old is left over from a failed create or delete

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT 'queued',
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    faces TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    worker TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    timings TEXT NOT NULL DEFAULT '{}',
    preview TEXT,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_cache ON jobs (cache_key, status);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    job TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX IF NOT EXISTS idempotency_job ON idempotency (job);
-- a key names its job while the job exists: deleted (or expired) with it, the key is free again
CREATE TRIGGER IF NOT EXISTS idempotency_goes_with_its_job AFTER DELETE ON jobs
BEGIN DELETE FROM idempotency WHERE job = old.id; END;
CREATE TABLE IF NOT EXISTS job_counts (
    worker TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (worker, outcome, reason)
);
""" + sqlite_outbox.SCHEMA
# The columns a Job is read from, by name: a migrated table has its added columns in the order they were added.
COLUMNS = ("id, status, stage, step, total, options, cache_key, faces, attempts, error_code, error_message, worker, "
           "created_at, started_at, updated_at, finished_at, timings, preview, owner")
COLUMN_NAMES = COLUMNS.split(", ")


class SqliteJobStore:
    """The single-machine store: the JobStore contract (app.jobs.store), plus what the in-process worker
    needs (claim_next, requeue_interrupted, the files on disk), and its webhook ``outbox``.
    ``webhook_progress_interval_s``: at most one ``progress`` webhook per subscription this often."""

    def __init__(self, data_dir: Path, webhook_progress_interval_s: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self.webhook_progress_interval_s = webhook_progress_interval_s
        self.jobs_dir = self.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        database = self.data_dir / "jobs.sqlite3"
        self._db = sqlite3.connect(str(database), check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self.space_reserve = SpaceReserve(self.data_dir / "space-reserve.bin")
        self.space_reserve.ensure()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
            self._db.executescript(SQLITE_SCHEMA)
        self.changes = SqliteChangeFeed(database)
        self.outbox = SqliteOutbox(self._query, self._transaction)

    def _migrate(self) -> None:
        """Columns added since a database was made (CREATE TABLE IF NOT EXISTS leaves an old table as it is)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "timings" not in columns:
            self._db.execute("ALTER TABLE jobs ADD COLUMN timings TEXT NOT NULL DEFAULT '{}'")
        if "preview" not in columns:
            self._db.execute("ALTER TABLE jobs ADD COLUMN preview TEXT")
        if "owner" not in columns:  # NULL in older rows: their owner is read from the cache key (_row)
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")

    def _query(self, sql: str, args: tuple = ()) -> List[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            return cursor.fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): what it reads cannot change before it
        commits, in this process or another."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a full disk can fail the COMMIT after SQLite rolled back itself
                    self._db.execute("ROLLBACK")
                raise

    def _must_write(self, sql: str, args: tuple = (),
                    then: Optional[Callable[[sqlite3.Connection], Any]] = None) -> Any:
        """A write that must be recorded even on a full disk: the space reserve is given up for it. ``then``
        runs in the same transaction when the write changed a row (the webhook events it causes); its result
        is returned."""
        def write() -> Any:
            with self._transaction() as db:
                return then(db) if db.execute(sql, args).rowcount and then is not None else None

        try:
            return write()
        except sqlite3.OperationalError as exc:
            if not (is_out_of_space(exc) and self.space_reserve.release()):
                raise
            log.warning("the disk is full: the space reserve was released to record a job's state")
            return write()

    @staticmethod
    def _row(row: tuple) -> Job:
        return Job.stored(row[0], dict(zip(COLUMN_NAMES[1:], row[1:])))

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def create(self, job_id: str, new: NewJob, upload: bytes, idempotency: Optional[IdempotencyKey] = None) -> Job:
        """All or nothing: the upload is written first, then one transaction looks for a job that already
        answers the request and, finding none, writes the row; a failure, or a job found, removes the folder
        (StorageFull when the disk is full)."""
        folder = self.job_dir(job_id)
        try:
            folder.mkdir(parents=True)
            self.write_file(job_id, UPLOAD, upload)
            now = time.time()
            with self._transaction() as db:
                found = self._answering(db, new.cache_key, idempotency)
                if found is None:
                    db.execute("INSERT INTO jobs (id, status, owner, options, cache_key, faces, created_at, "
                               "updated_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                               "status = 'queued', owner = excluded.owner, options = excluded.options, "
                               "cache_key = excluded.cache_key, faces = excluded.faces, "
                               "created_at = excluded.created_at, updated_at = excluded.updated_at "
                               "WHERE status = 'reserved'",
                               (job_id, new.owner, new.options.model_dump_json(), new.cache_key,
                                new.faces_json(), now, now))
                self._name(db, idempotency, found or job_id)
                queued = new.webhook is not None and subscribe(db, found or job_id, new.webhook, now)
        except Exception as exc:
            shutil.rmtree(str(folder), ignore_errors=True)
            if is_out_of_space(exc):
                raise storage_full_from(exc) from None
            raise
        if found is not None:
            shutil.rmtree(str(folder), ignore_errors=True)
        else:
            self.changes.nudge()
        if queued:
            self.outbox.on_queued()
        return self.get(found or job_id)  # type: ignore[return-value]

    def _answering(self, db: sqlite3.Connection, cache_key: str, idempotency: Optional[IdempotencyKey]
                   ) -> Optional[str]:
        """Inside a transaction: the id of the job that already answers a create (see find_reusable)."""
        if idempotency is not None:
            named = db.execute("SELECT idempotency.job, idempotency.fingerprint FROM idempotency JOIN jobs "
                               "ON jobs.id = idempotency.job WHERE idempotency.owner = ? AND key = ? "
                               "AND status != 'reserved'",
                               (idempotency.owner, idempotency.key)).fetchone()
            if named is not None:
                if named[1] != idempotency.fingerprint:
                    raise IdempotencyConflict(idempotency.key)
                return named[0]
        rows = db.execute("SELECT id, status FROM jobs WHERE cache_key = ? AND status IN ('succeeded', 'queued', "
                          "'running') ORDER BY created_at DESC", (cache_key,)).fetchall()
        for found, status in rows:
            if status != "succeeded" or (self.job_dir(found) / LATENTS).exists():
                return found
        return None

    @staticmethod
    def _name(db: sqlite3.Connection, idempotency: Optional[IdempotencyKey], job_id: str) -> None:
        """Inside a transaction: the Idempotency-Key, if any, names the job from now on."""
        if idempotency is not None:
            db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
                       (idempotency.owner, idempotency.key, job_id, idempotency.fingerprint))

    def reserve(self, job_id: str, limit: int) -> bool:
        """Hold one of ``limit`` places (queued + running + reserved) for a job about to be created, in one
        transaction: concurrent uploads can never overfill the queue. A reservation that is neither turned
        into a job (create) nor released within RESERVATION_TTL_S lapses."""
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE status = 'reserved' AND created_at < ?", (now - RESERVATION_TTL_S,))
            (taken,) = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('reserved', 'queued', 'running')"
                                  ).fetchone()
            if taken < limit:
                db.execute("INSERT INTO jobs (id, status, stage, options, cache_key, created_at, updated_at) "
                           "VALUES (?, 'reserved', 'reserved', '{}', '', ?, ?)", (job_id, now, now))
        return taken < limit

    def release(self, job_id: str) -> None:
        """Give back a reservation that did not become a job."""
        self._query("DELETE FROM jobs WHERE id = ? AND status = 'reserved'", (job_id,))

    def get(self, job_id: str) -> Optional[Job]:
        rows = self._query("SELECT %s FROM jobs WHERE id = ?" % COLUMNS, (job_id,))
        return self._row(rows[0]) if rows else None

    def find_reusable(self, cache_key: str, idempotency: Optional[IdempotencyKey] = None) -> Optional[Job]:
        """The job the Idempotency-Key names, or a succeeded job (its files still there) or a live one with the
        same input and options, which the key then names: one transaction."""
        with self._transaction() as db:
            found = self._answering(db, cache_key, idempotency)
            if found is not None:
                self._name(db, idempotency, found)
        return self.get(found) if found is not None else None

    def subscribe(self, job_id: str, webhook: Webhook) -> None:
        with self._transaction() as db:
            queued = subscribe(db, job_id, webhook, time.time())
        if queued:
            self.outbox.on_queued()

    def claim_next(self, worker: str) -> Optional[Job]:
        """Atomically move the oldest queued job to running."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT id, attempts FROM jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1"
                             ).fetchone()
            started = row is not None and row[1] == 0 and queue_event(db, row[0], "start", now)
            if row is not None:
                db.execute("UPDATE jobs SET status = 'running', stage = 'starting', step = 0, total = 0, "
                           "timings = '{}', preview = NULL, attempts = attempts + 1, worker = ?, started_at = ?, "
                           "updated_at = ? "
                           "WHERE id = ?",
                           (worker, now, now, row[0]))
        if row is None:
            return None
        self.changes.nudge()
        if started:
            self.outbox.on_queued()
        return self.get(row[0])

    def progress(self, job_id: str, stage: str, step: Optional[int] = None, total: Optional[int] = None,
                 timings: Optional[Dict[str, float]] = None) -> None:
        """Stage changes keep the last step/total, so a finished job still says how far it projected. A new
        step queues a ``progress`` webhook when the last was at least the interval ago."""
        now = time.time()
        with self._transaction() as db:
            changed = db.execute("UPDATE jobs SET stage = ?, step = COALESCE(?, step), total = COALESCE(?, total), "
                                 "timings = COALESCE(?, timings), updated_at = ? WHERE id = ? AND status = 'running'",
                                 (stage, step, total, None if timings is None else json.dumps(timings), now,
                                  job_id)).rowcount
            queued = changed and step and queue_progress(db, job_id, now, self.webhook_progress_interval_s)
        if changed:
            self.changes.nudge()
        if queued:
            self.outbox.on_queued()

    def publish_preview(self, job_id: str, preview: Dict[str, Any], files: Dict[str, bytes]) -> None:
        """Only on a running job; a job that stopped meanwhile (a cancel deletes its folder) keeps no preview: the
        record's UPDATE says whether it still ran."""
        if not self._running(job_id):
            return
        for name, data in files.items():
            self.write_file(job_id, name, data)
        with self._lock:
            recorded = self._db.execute("UPDATE jobs SET preview = ?, updated_at = ? WHERE id = ? AND "
                                        "status = 'running'", (json.dumps(preview), time.time(), job_id)).rowcount
        if recorded:
            self.changes.nudge()
        else:
            self._drop_previews(job_id)

    def _running(self, job_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM jobs WHERE id = ? AND status = 'running'", (job_id,)))

    def _drop_previews(self, job_id: str) -> None:
        for path in self.job_dir(job_id).glob(PREVIEW_FILES):
            path.unlink()

    def finish(self, job_id: str, status: str, error_code: Optional[str] = None,
               error_message: Optional[str] = None) -> None:
        now = time.time()
        self._end("UPDATE jobs SET status = ?, stage = ?, error_code = ?, error_message = ?, updated_at = ?, "
                  "finished_at = ? WHERE id = ? AND status IN ('queued', 'running')",
                  (status, status, error_code, error_message, now, now, job_id), job_id, now)
        self.changes.nudge()
        folder = self.job_dir(job_id)
        # privacy: the upload is not kept once the job is over, nor the photo (kept for re-pastes) and the live
        # previews (a likeness of the face) of a job that has no result
        for name in (UPLOAD,) if status == "succeeded" else (UPLOAD, PHOTO):
            with suppress(FileNotFoundError):
                (folder / name).unlink()
        if status != "succeeded":
            self._drop_previews(job_id)

    def _end(self, sql: str, args: tuple, job_id: str, now: float) -> None:
        """A write that ends the job, and its ``completed`` webhooks queued in the same transaction."""
        if self._must_write(sql, args, lambda db: queue_event(db, job_id, "completed", now)):
            self.outbox.on_queued()

    def write_file(self, job_id: str, name: str, data: bytes) -> None:
        write_atomically(self.job_dir(job_id) / name, data)

    def read_file(self, job_id: str, name: str) -> Optional[bytes]:
        path = self.job_dir(job_id) / name
        return path.read_bytes() if path.is_file() else None

    def has_file(self, job_id: str, name: str) -> bool:
        return (self.job_dir(job_id) / name).is_file()

    def keep_upload(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        try:
            os.replace(str(folder / UPLOAD), str(folder / PHOTO))
        except FileNotFoundError:
            if not (folder / PHOTO).is_file():
                raise

    def cancel(self, job_id: str) -> Optional[Job]:
        now = time.time()
        self._end("UPDATE jobs SET status = 'cancelled', stage = 'cancelled', updated_at = ?, finished_at = ? "
                  "WHERE id = ? AND status IN ('queued', 'running')", (now, now, job_id), job_id, now)
        self.changes.nudge()
        return self.get(job_id)

    def delete_files(self, job_id: str) -> None:
        """Best effort: what cannot be removed now is swept later by purge_expired (remove_orphans)."""
        folder = self.job_dir(job_id)
        shutil.rmtree(str(folder), ignore_errors=True)
        if folder.exists():
            log.warning("job %s: some files could not be removed yet; they will be swept later", job_id)

    def delete(self, job_id: str) -> None:
        """Files first (frees space for the database write), then the row, whatever became of the files."""
        self.delete_files(job_id)
        self._must_write("DELETE FROM jobs WHERE id = ?", (job_id,))
        self.changes.nudge()

    def requeue(self, job_id: str) -> None:
        """A running job goes back to the queue without using up an attempt: the server, not the job, failed
        (disk full, shutting down)."""
        self._must_write("UPDATE jobs SET status = 'queued', stage = 'queued', step = 0, worker = NULL, "
                    "timings = '{}', preview = NULL, attempts = MAX(attempts - 1, 0), updated_at = ? "
                    "WHERE id = ? AND status = 'running'",
                    (time.time(), job_id))
        self.changes.nudge()

    def remove_orphans(self, min_age_s: float = ORPHAN_AGE_S) -> List[str]:
        """Job folders that have no row (a create or delete that failed half-way), older than ``min_age_s``."""
        known = {row[0] for row in self._query("SELECT id FROM jobs")}
        cutoff = time.time() - min_age_s
        removed = []
        for folder in self.jobs_dir.iterdir():
            if folder.name not in known and folder.stat().st_mtime < cutoff:
                shutil.rmtree(str(folder), ignore_errors=True)
                removed.append(folder.name)
        return removed

    def is_cancelled(self, job_id: str) -> bool:
        rows = self._query("SELECT status FROM jobs WHERE id = ?", (job_id,))
        return not rows or rows[0][0] == "cancelled"

    def requeue_interrupted(self, max_attempts: int) -> List[str]:
        """After a crash: running jobs go back to the queue, or fail once out of attempts."""
        now = time.time()
        self._query("DELETE FROM jobs WHERE status = 'reserved'")  # uploads the last process never accepted
        rows = self._query("SELECT id, attempts FROM jobs WHERE status = 'running'")
        for job_id, attempts in rows:
            if attempts < max_attempts:
                self._query("UPDATE jobs SET status = 'queued', stage = 'queued', step = 0, timings = '{}', "
                            "preview = NULL, "
                            "updated_at = ? WHERE id = ?", (now, job_id))
            else:
                self.finish(job_id, "failed", "worker_lost", worker_lost_message(attempts))
        self.changes.nudge()
        return [row[0] for row in rows]

    def queue_depth(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0])

    def position(self, job: Job) -> int:
        """0 = running or next; n = n jobs ahead of it."""
        if job.status != "queued":
            return 0
        return int(self._query("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running') AND created_at < ?",
                               (job.created_at,))[0][0])

    def recent_durations(self, limit: int = 20) -> List[float]:
        rows = self._query("SELECT finished_at - started_at FROM jobs WHERE status = 'succeeded' AND started_at IS "
                           "NOT NULL ORDER BY finished_at DESC LIMIT ?", (limit,))
        return [float(r[0]) for r in rows]

    def count_job(self, worker: str, outcome: str, reason: str) -> None:
        self._query("INSERT INTO job_counts (worker, outcome, reason, count) VALUES (?, ?, ?, 1) "
                    "ON CONFLICT (worker, outcome, reason) DO UPDATE SET count = count + 1", (worker, outcome, reason))

    def job_counts(self) -> JobCounts:
        rows = self._query("SELECT worker, outcome, reason, count FROM job_counts")
        return {(worker, outcome, reason): int(count) for worker, outcome, reason, count in rows}

    def purge_expired(self, ttl_s: float, now: Optional[float] = None) -> List[str]:
        """Delete finished jobs (rows and files) older than the TTL."""
        cutoff = (time.time() if now is None else now) - ttl_s
        rows = self._query("SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (cutoff,))
        for (job_id,) in rows:
            self.delete(job_id)
        self.remove_orphans()
        return [row[0] for row in rows]
