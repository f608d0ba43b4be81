"""Who created which job, and which job an ``Idempotency-Key`` made: ``GET /jobs`` lists a caller's jobs
(per API key) and a retried create returns the job the first try made. Callers are named by their tenant id
(app.api.auth.owner_of: an HMAC of the key under the server's secret, never the key; "" on a server without keys).
Kept beside the job store (SQLite next to ``jobs.sqlite3``, or Redis), so expired jobs simply stop resolving
and are pruned as they are met."""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

from redis import Redis

from ..jobs.redis_store import RedisJobStore
from ..jobs.store import JobStore

Entry = Tuple[str, float]  # (job id, created at)


class SqliteJobIndex:
    def __init__(self, data_dir: Path, ttl_s: int) -> None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._db = sqlite3.connect(str(Path(data_dir) / "job-index.sqlite3"), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS owned (owner TEXT, job TEXT, created_at REAL, PRIMARY KEY (owner, job));"
                "CREATE INDEX IF NOT EXISTS owned_newest ON owned (owner, created_at DESC);"
                "CREATE TABLE IF NOT EXISTS idempotency (owner TEXT, key TEXT, job TEXT, fingerprint TEXT, "
                "created_at REAL, PRIMARY KEY (owner, key));")

    def _query(self, sql: str, args: tuple = ()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def add(self, owner: str, job_id: str, created_at: float) -> None:
        self._query("INSERT OR IGNORE INTO owned VALUES (?, ?, ?)", (owner, job_id, created_at))

    def page(self, owner: str, before: float, limit: int) -> List[Entry]:
        rows = self._query("SELECT job, created_at FROM owned WHERE owner = ? AND created_at < ? "
                           "ORDER BY created_at DESC LIMIT ?", (owner, before, limit))
        return [(job, float(created)) for job, created in rows]

    def forget(self, owner: str, job_id: str) -> None:
        self._query("DELETE FROM owned WHERE owner = ? AND job = ?", (owner, job_id))

    def claim_key(self, owner: str, key: str, job_id: str, fingerprint: str) -> Tuple[str, str]:
        """Record ``key`` → ``job_id`` unless the key is taken; returns the (job, fingerprint) it names."""
        self._query("DELETE FROM idempotency WHERE created_at < ?", (time.time() - self.ttl_s,))
        self._query("INSERT OR IGNORE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                    (owner, key, job_id, fingerprint, time.time()))
        return self.lookup_key(owner, key) or (job_id, fingerprint)

    def lookup_key(self, owner: str, key: str) -> Optional[Tuple[str, str]]:
        rows = self._query("SELECT job, fingerprint FROM idempotency WHERE owner = ? AND key = ? AND created_at >= ?",
                           (owner, key, time.time() - self.ttl_s))
        return (rows[0][0], rows[0][1]) if rows else None


class RedisJobIndex:
    PREFIX = "toonify:index:"

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis, self.ttl_s = redis, ttl_s

    def add(self, owner: str, job_id: str, created_at: float) -> None:
        key = self.PREFIX + "owner:" + owner
        self.redis.zadd(key, {job_id: created_at})
        self.redis.expire(key, self.ttl_s * 2)

    def page(self, owner: str, before: float, limit: int) -> List[Entry]:
        rows = self.redis.zrevrangebyscore(self.PREFIX + "owner:" + owner, "(%r" % before, "-inf", start=0,
                                           num=limit, withscores=True)
        return [(job.decode(), float(score)) for job, score in rows]

    def forget(self, owner: str, job_id: str) -> None:
        self.redis.zrem(self.PREFIX + "owner:" + owner, job_id)

    def claim_key(self, owner: str, key: str, job_id: str, fingerprint: str) -> Tuple[str, str]:
        name = self.PREFIX + "idem:" + owner + ":" + hashlib.sha256(key.encode()).hexdigest()
        self.redis.set(name, job_id + " " + fingerprint, nx=True, ex=self.ttl_s)
        return self.lookup_key(owner, key) or (job_id, fingerprint)

    def lookup_key(self, owner: str, key: str) -> Optional[Tuple[str, str]]:
        value = self.redis.get(self.PREFIX + "idem:" + owner + ":" + hashlib.sha256(key.encode()).hexdigest())
        if value is None:
            return None
        job_id, fingerprint = value.decode().split(" ", 1)
        return job_id, fingerprint


def create_job_index(store: JobStore, data_dir: Path, ttl_s: int) -> "SqliteJobIndex | RedisJobIndex":
    """Beside the job store: in its Redis when the jobs are in Redis, else a SQLite file in the data dir."""
    if isinstance(store, RedisJobStore):
        return RedisJobIndex(store.redis, ttl_s)
    return SqliteJobIndex(data_dir, ttl_s)
