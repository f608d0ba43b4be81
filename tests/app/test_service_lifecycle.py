"""Back-pressure, crash recovery, API keys and retention, each on its own real server or a real store."""
from __future__ import annotations

import time

import pytest

from app.jobs.job import NewJob
from app.jobs.sqlite_store import SqliteJobStore
from app.options import ToonifyOptions
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS


def _photo(name: str):
    return {"image": (name, (PHOTOS / name).read_bytes(), "image/png")}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wstats-cache")


def test_full_queue_answers_429_with_retry_after(engine, tiny_models, tmp_path, cache_dir):
    server = Server(engine, tiny_models, tmp_path / "data", cache_dir, max_queue=1).start()
    try:
        with server.client() as client:
            first = client.post("/toonify?async=1", files=_photo("astronaut.png"), data={"steps": "2000"})
            assert first.status_code == 202
            second = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "2000"})
            assert second.status_code == 429 and second.json()["code"] == "queue_full"
            assert int(second.headers["retry-after"]) >= 1
            client.delete("/jobs/%s" % first.json()["id"])
            third = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "3"})
            assert third.status_code == 202
    finally:
        server.stop()


def test_sigkill_mid_job_then_restart_requeues_and_finishes(engine, tiny_models, tmp_path, cache_dir):
    data = tmp_path / "data"
    server = Server(engine, tiny_models, data, cache_dir).start()
    with server.client() as client:
        done = client.post("/toonify", files=_photo("astronaut.png"), data={"steps": "5"})
        assert done.status_code == 200
        done_id = done.headers["x-toonify-job"]
        running = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "150"}).json()["id"]
        while client.get("/jobs/%s" % running).json()["step"] < 2:
            time.sleep(0.05)
    server.kill()
    restarted = Server(engine, tiny_models, data, cache_dir)
    restarted.port, restarted.url = server.port, server.url
    restarted.start()
    try:
        with restarted.client() as client:
            job = wait_for(client, running, timeout_s=180)
            assert job["status"] == "succeeded" and job["attempts"] == 2
            assert client.get("/jobs/%s/result" % running).status_code == 200
            before = client.get("/jobs/%s/result" % done_id)
            assert before.status_code == 200 and before.content == done.content
    finally:
        restarted.stop()


def test_api_keys(engine, tiny_models, tmp_path, cache_dir):
    server = Server(engine, tiny_models, tmp_path / "data", cache_dir, api_keys="k1,k2").start()
    try:
        with server.client() as client:
            refused = client.post("/toonify", files=_photo("chelsea.png"))
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
            allowed = client.post("/toonify", files=_photo("chelsea.png"), headers={"Authorization": "Bearer k2"})
            assert allowed.status_code == 422  # authorised; the cat simply has no face
    finally:
        server.stop()


def test_uploads_go_when_jobs_finish_and_results_after_their_ttl(tmp_path):
    store = SqliteJobStore(tmp_path)
    job = store.create("job-a", NewJob("", ToonifyOptions(face="largest"), "key", []), b"photo bytes")
    folder = store.job_dir(job.id)
    (folder / "latents.npy").write_bytes(b"x")
    assert (folder / "upload.bin").exists()
    assert store.claim_next("w").id == job.id
    store.finish(job.id, "succeeded")
    assert not (folder / "upload.bin").exists() and (folder / "latents.npy").exists()
    assert store.purge_expired(ttl_s=3600) == []
    assert store.purge_expired(ttl_s=3600, now=time.time() + 3601) == ["job-a"]
    assert store.get("job-a") is None and not folder.exists()


def test_interrupted_jobs_are_requeued_then_failed_after_the_attempt_limit(tmp_path):
    store = SqliteJobStore(tmp_path)
    store.create("job-b", NewJob("", ToonifyOptions(), "key", []), b"photo")
    for attempt in (1, 2):
        assert store.claim_next("w").attempts == attempt
        assert store.requeue_interrupted(max_attempts=2) == ["job-b"]
    job = store.get("job-b")
    assert job.status == "failed" and job.error_code == "worker_lost"
