"""Who created which job: ``GET /jobs`` lists a caller's jobs (per API key). Callers are named by their tenant
id (app.api.auth.owner_of: an HMAC of the key under the server's secret, never the key). On a server without
keys every job is recorded under NO_OWNER (""): there every job is every caller's, as its links already are.
Kept beside the job store (SQLite next to ``jobs.sqlite3``, or Redis), so expired jobs simply stop resolving
and are pruned as they are met; entries older than twice the result TTL (their jobs are purged by then) go as
the owner adds more, so the index does not grow with every job ever made. (Which job an ``Idempotency-Key``
names is the job store's: the key is claimed in the same atomic step that creates the job.)"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import List, Tuple

from redis import Redis

from ..jobs.redis_store import RedisJobStore
from ..jobs.store import JobStore

Entry = Tuple[str, float]  # (job id, created at)


def horizon(ttl_s: int) -> float:
    """The creation time before which an entry is dropped: its job finished and was purged long ago."""
    return time.time() - 2 * ttl_s


class SqliteJobIndex:
    def __init__(self, data_dir: Path, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(Path(data_dir) / "job-index.sqlite3"), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS owned (owner TEXT, job TEXT, created_at REAL, PRIMARY KEY (owner, job));"
                "CREATE INDEX IF NOT EXISTS owned_newest ON owned (owner, created_at DESC);")

    def _query(self, sql: str, args: tuple = ()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def add(self, owner: str, job_id: str, created_at: float) -> None:
        self._query("DELETE FROM owned WHERE owner = ? AND created_at < ?", (owner, horizon(self.ttl_s)))
        self._query("INSERT OR IGNORE INTO owned VALUES (?, ?, ?)", (owner, job_id, created_at))

    def page(self, owner: str, before: float, limit: int) -> List[Entry]:
        rows = self._query("SELECT job, created_at FROM owned WHERE owner = ? AND created_at < ? "
                           "ORDER BY created_at DESC LIMIT ?", (owner, before, limit))
        return [(job, float(created)) for job, created in rows]

    def forget(self, owner: str, job_id: str) -> None:
        self._query("DELETE FROM owned WHERE owner = ? AND job = ?", (owner, job_id))


class RedisJobIndex:
    PREFIX = "toonify:index:"

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis, self.ttl_s = redis, ttl_s

    def add(self, owner: str, job_id: str, created_at: float) -> None:
        key = self.PREFIX + "owner:" + owner
        self.redis.zremrangebyscore(key, "-inf", "(%r" % horizon(self.ttl_s))
        self.redis.zadd(key, {job_id: created_at})
        self.redis.expire(key, self.ttl_s * 2)

    def page(self, owner: str, before: float, limit: int) -> List[Entry]:
        rows = self.redis.zrevrangebyscore(self.PREFIX + "owner:" + owner, "(%r" % before, "-inf", start=0,
                                           num=limit, withscores=True)
        return [(job.decode(), float(score)) for job, score in rows]

    def forget(self, owner: str, job_id: str) -> None:
        self.redis.zrem(self.PREFIX + "owner:" + owner, job_id)


def create_job_index(store: JobStore, data_dir: Path, ttl_s: int) -> "SqliteJobIndex | RedisJobIndex":
    """Beside the job store: in its Redis when the jobs are in Redis, else a SQLite file in the data dir."""
    if isinstance(store, RedisJobStore):
        return RedisJobIndex(store.redis, ttl_s)
    return SqliteJobIndex(data_dir, ttl_s)
