"""Webhooks outlive the API process that accepted the job (#25), over real processes, sockets and redis-server:
SIGKILL the only API process mid-job and restart it on the same data dir, and its ``completed`` call still
comes; in Redis mode, SIGKILL the API process that accepted the job and the other one sends it."""
from __future__ import annotations

import time

import pytest

from tests.app.receiver import Receiver
from tests.app.scale import TTL_S, Cluster
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

HOOKS = {"webhook_secret": "webhook-secret-durable", "webhook_allow_private": "1"}
STEPS = "30"  # long enough to be killed mid-run (killed at step 2)
LEASE_AND_MARGIN_S = 90  # a delivery a dead process held is due again within its lease (30 s)
JOB_S = 600  # a 30-step run on a loaded machine (about 2 s a step seen with four test suites at once)


def _create(client, receiver: Receiver) -> str:
    photo = {"image": ("obama.jpg", (PHOTOS / "obama.jpg").read_bytes(), "application/octet-stream")}
    response = client.post("/toonify?async=1", files=photo, data={
        "steps": STEPS, "webhook": receiver.url, "webhook_events_filter": "completed"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _running(client, job_id: str) -> dict:
    return wait_for(client, job_id, until=lambda job: job["status"] == "running" and job["step"] >= 2)


def _completed_call(receiver: Receiver, job_id: str) -> dict:
    receiver.wait(1, timeout_s=LEASE_AND_MARGIN_S)
    time.sleep(1.0)  # room for a duplicate to show
    payloads = receiver.payloads()
    assert [(p["event"], p["job"]["id"]) for p in payloads] == [("completed", job_id)], payloads
    return payloads[0]["job"]


@pytest.fixture
def receiver():
    hooks = Receiver()
    yield hooks
    hooks.close()


def test_completed_arrives_after_the_api_is_killed_mid_job_and_restarted(engine, tiny_models, tmp_path, receiver):
    data, cache = tmp_path / "data", tmp_path / "cache"
    server = Server(engine, tiny_models, data, cache, **HOOKS).start()
    with server.client() as client:
        job_id = _create(client, receiver)
        _running(client, job_id)
    server.kill()
    assert receiver.calls == []
    server.start()  # a new process on the same port and data dir
    try:
        with server.client() as client:
            finished = wait_for(client, job_id, timeout_s=JOB_S)
        assert finished["status"] == "succeeded" and finished["attempts"] == 2
        assert _completed_call(receiver, job_id)["status"] == "succeeded"
    finally:
        server.stop()


def test_redis_mode_the_other_api_process_sends_completed_when_the_accepting_one_is_killed(
        engine, tiny_models, tmp_path, receiver):
    cluster = Cluster(engine, tiny_models, tmp_path, tmp_path / "cache", **HOOKS)
    other = Server(engine, tmp_path / "api-models", tmp_path / "data-other", tmp_path / "cache", queue="redis",
                   redis_url=cluster.redis.url, worker_ttl_s=TTL_S, **HOOKS).spawn().wait_until("/healthz")
    try:
        cluster.workers.start("w1")
        with cluster.api.client() as accepting, other.client() as client:
            cluster.wait_for_workers(client, ["w1"])
            job_id = _create(accepting, receiver)
            _running(client, job_id)
            cluster.api.kill()
            assert client.get("/jobs/%s" % job_id).json()["status"] == "running"  # the killed one saw no end
            finished = wait_for(client, job_id, timeout_s=JOB_S)
        assert finished["status"] == "succeeded"
        assert _completed_call(receiver, job_id)["status"] == "succeeded"
    finally:
        other.stop()
        cluster.close()
