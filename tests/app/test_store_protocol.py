"""Both job stores keep the JobStore contract the API, the runner and the workers are written against: every
method, with the same parameters, defaults and types. A store that drifts fails here, not in production on
the one queue backend the tests did not exercise."""
from __future__ import annotations

import inspect

import pytest

from app.jobs.job import PHOTO, UPLOAD, NewJob
from app.jobs.redis_store import RedisJobStore, connect, files_key, job_key
from app.jobs.sqlite_store import SqliteJobStore
from app.jobs.store import JobStore
from app.options import ToonifyOptions
from tests.app.scale import RedisServer

CONTRACT = sorted(name for name, value in vars(JobStore).items()
                  if inspect.isfunction(value) and not name.startswith("_"))


def test_the_contract_lists_what_the_api_and_the_runner_call():
    assert {"reserve", "create", "get", "progress", "finish", "requeue", "cancel", "is_cancelled", "read_file",
            "write_file", "queue_depth", "position", "count_job", "job_counts"} <= set(CONTRACT)


@pytest.mark.parametrize("store", [SqliteJobStore, RedisJobStore], ids=lambda store: store.__name__)
@pytest.mark.parametrize("name", CONTRACT)
def test_store_implements_the_contract_method(store, name):
    method = getattr(store, name, None)
    assert inspect.isfunction(method), "%s has no method %s" % (store.__name__, name)
    assert inspect.signature(method) == inspect.signature(getattr(JobStore, name)), (
        "%s.%s%s differs from JobStore.%s%s" % (store.__name__, name, inspect.signature(method), name,
                                                inspect.signature(getattr(JobStore, name))))


@pytest.fixture(params=["sqlite", "redis"])
def a_store(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteJobStore(tmp_path)
        return
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield RedisJobStore(connect(server.url), result_ttl_s=600, job_timeout_s=60, job_attempts=3)
    finally:
        server.stop()


def test_the_upload_is_kept_as_the_photo_once_and_not_written_again(a_store):
    """A photo is stored once: its upload is moved to the result set's name (a rename on disk, inside Redis),
    and a run after one that moved it finds it there."""
    a_store.reserve("j", 4)
    a_store.create("j", NewJob("", ToonifyOptions(), "key", []), b"the photo")
    before = _where(a_store, "j", UPLOAD)
    a_store.keep_upload("j")
    assert (a_store.read_file("j", UPLOAD), a_store.read_file("j", PHOTO)) == (None, b"the photo")
    assert _where(a_store, "j", PHOTO) == before  # the same file, moved (on disk: the same inode)
    a_store.keep_upload("j")  # kept already
    assert a_store.read_file("j", PHOTO) == b"the photo"
    a_store.delete_files("j")
    with pytest.raises(FileNotFoundError):
        a_store.keep_upload("j")


def test_a_job_that_ends_without_a_result_keeps_no_photo(a_store):
    """Privacy: the photo kept for re-pastes goes with a run that failed after keeping it; a result keeps it."""
    for job_id, status in (("ok", "succeeded"), ("bad", "failed")):
        a_store.reserve(job_id, 4)
        a_store.create(job_id, NewJob("", ToonifyOptions(), "key-" + job_id, []), b"the photo")
        a_store.keep_upload(job_id)
        a_store.finish(job_id, status)
    assert a_store.read_file("ok", PHOTO) == b"the photo"
    assert (a_store.read_file("bad", UPLOAD), a_store.read_file("bad", PHOTO)) == (None, None)


def _where(store, job_id: str, name: str):
    """Which stored copy a file is: its inode on disk; in Redis, its bytes (nothing travels to tell copies apart,
    so the test for Redis is that UPLOAD is gone and PHOTO holds it)."""
    if isinstance(store, SqliteJobStore):
        return (store.job_dir(job_id) / name).stat().st_ino
    return store.read_file(job_id, name)


def test_a_file_written_to_a_finished_job_lives_as_long_as_the_job(tmp_path):
    """Redis: a file written after the job's files expired (a transcode racing the job's expiry) takes the job's
    time to live, and one written to a job that is gone is taken back: no hash is left that never expires."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = RedisJobStore(connect(server.url), result_ttl_s=600, job_timeout_s=60, job_attempts=3)
        store.create("j", NewJob("", ToonifyOptions(), "key", []), b"the photo")
        store.redis.expire(job_key("j"), 100)
        store.redis.delete(files_key("j"))  # the files expired a moment before the job
        store.write_file("j", "paste.jpeg", b"jpeg")
        assert 0 < store.redis.ttl(files_key("j")) <= 100
        store.redis.delete(job_key("j"))
        store.write_file("j", "paste.webp", b"webp")
        assert not store.redis.exists(files_key("j"))
    finally:
        server.stop()
