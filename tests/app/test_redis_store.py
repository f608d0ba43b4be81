"""The Redis job store against a real redis-server: state changes, races with cancel, expiry, delivery."""
from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue

from app.jobs.job import LATENTS, UPLOAD, AdmittedFace, NewJob
from app.jobs.redis_store import JOBS_QUEUE, DeadlineRetry, RedisJobStore, connect, files_key, job_key
from app.options import ToonifyOptions


@pytest.fixture
def store(redis_server):
    client = connect(redis_server.url)
    client.flushall()
    return RedisJobStore(client, result_ttl_s=600, job_timeout_s=60, job_attempts=3)


def test_a_created_job_is_recorded_and_delivered_together(store):
    face = AdmittedFace((0, 0, 1, 1), 0.5, ((0.5, 0.25),) * 68)
    job = store.create("a", NewJob("alice", ToonifyOptions(steps=5), "alice;key-a", [face]), b"photo")
    assert (job.status, job.owner, job.options.steps, job.faces, job.attempts) == ("queued", "alice", 5, [face], 0)
    assert store.read_file("a", UPLOAD) == b"photo"
    rq_jobs = Queue(JOBS_QUEUE, connection=store.redis).jobs
    assert [j.id for j in rq_jobs] == ["a"] and rq_jobs[0].retries_left == 2
    assert store.queue_depth() == 1 and store.find_reusable("alice;key-a").id == "a"


def test_finish_keeps_results_for_the_ttl_and_drops_the_upload(store):
    store.create("b", NewJob("", ToonifyOptions(), "key-b", []), b"photo")
    store.create("c", NewJob("", ToonifyOptions(), "key-c", []), b"photo")
    assert store.position(store.get("c")) == 1
    assert store.claim("b", "w1").status == "running"
    store.progress("b", "projecting", 3, 10)
    assert (store.get("b").step, store.get("b").total) == (3, 10)
    store.write_file("b", LATENTS, b"latents")
    store.finish("b", "succeeded")
    job = store.get("b")
    assert job.status == "succeeded" and job.finished_at is not None and store.read_file("b", UPLOAD) is None
    assert 0 < store.redis.ttl(job_key("b")) <= 600 and 0 < store.redis.ttl(files_key("b")) <= 600
    assert store.queue_depth() == 1 and store.position(store.get("c")) == 0 and len(store.recent_durations()) == 1
    store.finish("b", "failed", "internal_error", "late")  # a second finish changes nothing
    assert store.get("b").status == "succeeded" and store.find_reusable("key-b").id == "b"


def test_cancel_wins_over_a_later_finish_and_progress(store):
    store.create("d", NewJob("", ToonifyOptions(), "key-d", []), b"photo")
    store.claim("d", "w1")
    assert store.cancel("d").status == "cancelled" and store.is_cancelled("d")
    store.progress("d", "projecting", 5, 10)
    store.finish("d", "succeeded")
    job = store.get("d")
    assert (job.status, job.step) == ("cancelled", 0) and store.read_file("d", UPLOAD) is None
    assert store.claim("d", "w2") is None and store.find_reusable("key-d") is None and store.queue_depth() == 0


def test_a_redelivered_job_counts_its_attempts_and_jobs_count_per_worker(store):
    store.create("e", NewJob("", ToonifyOptions(), "key-e", []), b"photo")
    store.claim("e", "w1")
    store.requeue("e")
    assert store.get("e").status == "queued"
    assert store.claim("e", "w2").attempts == 2
    store.count_job("w2", "succeeded", "")
    store.count_job("w2", "succeeded", "")
    store.count_job("w1", "failed", "no_face")
    assert store.job_counts() == {("w2", "succeeded", ""): 2, ("w1", "failed", "no_face"): 1}
    store.delete("e")
    assert store.get("e") is None and store.queue_depth() == 0


@pytest.mark.parametrize("deadline_s, attempts", [(0, 1), (60, 3)])
def test_a_failed_connection_is_retried_until_the_retries_or_the_deadline_run_out(deadline_s, attempts):
    tries = []

    def refused():
        tries.append(1)
        raise RedisConnectionError("refused")

    with pytest.raises(RedisConnectionError):
        DeadlineRetry(deadline_s, retries=2).call_with_retry(refused, lambda error: None)
    assert len(tries) == attempts


def test_stage_timings_are_kept_until_the_next_run(store):
    store.create("t", NewJob("", ToonifyOptions(), "key-t", []), b"photo")
    assert store.get("t").timings == {}
    store.claim("t", "w1")
    store.progress("t", "aligning", timings={"decoding": 0.25})
    store.progress("t", "projecting", 2, 10)  # a step leaves the timings as they are
    assert store.get("t").timings == {"decoding": 0.25}
    store.requeue("t")  # the run is over: its timings go
    assert store.get("t").timings == {}
    store.claim("t", "w2")
    store.progress("t", "saving", timings={"decoding": 0.5, "saving": 0.1})
    store.finish("t", "succeeded")
    store.progress("t", "late", timings={"decoding": 9.0})  # ignored once finished
    assert store.get("t").timings == {"decoding": 0.5, "saving": 0.1}
    store.claim("t", "w3")  # a finished job is not run again, and keeps its timings
    assert store.get("t").timings == {"decoding": 0.5, "saving": 0.1}
