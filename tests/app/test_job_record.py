"""The typed job record (issue 25 item 1): each store maps its rows to a Job once — owner, validated options,
the faces admission chose, a status enum — and what the previous version stored still loads: a SQLite database
without the owner column (migrated in place) and Redis hashes without an owner field (the owner read from the
cache key, as the API used to), against a real SQLite file and a real redis-server."""
from __future__ import annotations

import json
import sqlite3

import pytest

from app.jobs.job import AdmittedFace, JobStatus, NewJob
from app.jobs.redis_store import RedisJobStore, connect, job_key
from app.jobs.sqlite_store import SqliteJobStore
from app.options import ToonifyOptions

# What the previous version wrote: options as ToonifyOptions.model_dump(), faces as Face.to_json()
OLD_OPTIONS = {"face": "all", "steps": 7, "seed": 3, "strength": 0.5, "output": "paste", "format": "webp",
               "style": "toon"}
OLD_FACE = {"rect": [10, 20, 110, 120], "score": 1.2345, "landmarks": [[30.5, 40.25]] * 68}
OLD_CACHE_KEY = "tenant-a;4f2c;face=all;steps=7;seed=3"
OLD_TABLE = ("CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, stage TEXT NOT NULL DEFAULT 'queued', "
             "step INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, options TEXT NOT NULL, "
             "cache_key TEXT NOT NULL, faces TEXT NOT NULL DEFAULT '[]', attempts INTEGER NOT NULL DEFAULT 0, "
             "error_code TEXT, error_message TEXT, worker TEXT, created_at REAL NOT NULL, started_at REAL, "
             "updated_at REAL NOT NULL, finished_at REAL, timings TEXT NOT NULL DEFAULT '{}', preview TEXT)")


def _assert_old_job(job) -> None:
    assert job.owner == "tenant-a" and job.cache_key == OLD_CACHE_KEY
    assert job.status is JobStatus.SUCCEEDED and job.unreadable is None
    assert job.options == ToonifyOptions(**OLD_OPTIONS) and job.options.model_dump() == OLD_OPTIONS
    assert job.faces == [AdmittedFace((10, 20, 110, 120), 1.2345, ((30.5, 40.25),) * 68)]


def test_a_status_is_its_stored_string():
    assert JobStatus.QUEUED == "queued" and JobStatus("succeeded") is JobStatus.SUCCEEDED
    assert str(JobStatus.RUNNING) == "running" and "job is %s" % JobStatus.FAILED == "job is failed"
    assert json.dumps({"status": JobStatus.CANCELLED}) == '{"status": "cancelled"}'


def test_a_created_job_reads_back_typed(store):  # noqa: F811
    face = AdmittedFace.found([1, 2, 30, 40], 0.98765, [[1.234, 5.678]] * 68)
    options = ToonifyOptions(face="0", steps=4, strength=0.25, style="toon")
    created = store.create("j1", NewJob("owner-b", options, "another;key", [face]), b"photo")
    again = store.get("j1")
    assert created == again and again.owner == "owner-b"  # recorded, not read from the cache key
    assert again.status is JobStatus.QUEUED and again.options == options
    assert again.faces == [AdmittedFace((1, 2, 30, 40), 0.9877, ((1.23, 5.68),) * 68)]


def test_an_old_database_gains_the_owner_column_and_its_rows_read_typed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old = sqlite3.connect(str(data / "jobs.sqlite3"))
    old.execute(OLD_TABLE)
    old.execute("INSERT INTO jobs (id, status, stage, options, cache_key, faces, created_at, updated_at, finished_at) "
                "VALUES ('old', 'succeeded', 'succeeded', ?, ?, ?, 1.0, 2.0, 2.0)",
                (json.dumps(OLD_OPTIONS), OLD_CACHE_KEY, json.dumps([OLD_FACE])))
    old.commit()
    old.close()
    migrated = SqliteJobStore(data)
    _assert_old_job(migrated.get("old"))
    migrated.create("new", NewJob("tenant-b", ToonifyOptions(), "tenant-b;k", []), b"photo")
    assert migrated.get("new").owner == "tenant-b"
    columns = [row[1] for row in sqlite3.connect(str(data / "jobs.sqlite3")).execute("PRAGMA table_info(jobs)")]
    assert columns[-1] == "owner"


def test_an_old_redis_hash_reads_with_its_owner_from_the_cache_key(redis_server):  # noqa: F811
    client = connect(redis_server.url)
    client.flushall()
    redis_store = RedisJobStore(client, result_ttl_s=600, job_timeout_s=60, job_attempts=3)
    client.hset(job_key("old"), mapping={"status": "succeeded", "stage": "succeeded", "step": 7, "total": 7,
                                         "attempts": 1, "options": json.dumps(OLD_OPTIONS), "cache_key": OLD_CACHE_KEY,
                                         "faces": json.dumps([OLD_FACE]), "created_at": "1.0", "updated_at": "2.0",
                                         "finished_at": "2.0"})
    _assert_old_job(redis_store.get("old"))


def test_a_job_whose_options_this_version_cannot_read_still_loads_and_will_not_run(store):  # noqa: F811
    store.create("future", NewJob("", ToonifyOptions(), "k", []), b"photo")
    broken = json.dumps({"output": "sketch", "steps": 5})  # an output kind from a newer version
    if isinstance(store, SqliteJobStore):
        with store._transaction() as db:
            db.execute("UPDATE jobs SET options = ? WHERE id = 'future'", (broken,))
    else:
        store.redis.hset(job_key("future"), "options", broken)
    job = store.get("future")
    assert job.status is JobStatus.QUEUED and job.options == ToonifyOptions()
    assert "output" in job.unreadable
    with pytest.raises(ValueError, match="cannot be read.*output"):
        job.runnable_options()
