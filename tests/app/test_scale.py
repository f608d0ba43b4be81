"""TOONIFY_QUEUE=redis: one API, GPU workers as separate processes, a real redis-server in between."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Iterator, List

import httpx
import pytest

from tests.app.scale import Cluster, metric_values
from tests.app.server import free_port, wait_for
from tests.conftest import PHOTOS, REPO


@pytest.fixture
def cluster(engine, tiny_models, tmp_path, tmp_path_factory) -> Iterator:
    made: List[Cluster] = []

    def make(**settings: object) -> Cluster:
        made.append(Cluster(engine, tiny_models, tmp_path, tmp_path_factory.getbasetemp() / "scale-wstats",
                            **settings))
        return made[-1]

    yield make
    for each in made:
        each.close()


def _post(client, steps: int, seed: int = 0, photo: str = "astronaut.png"):
    files = {"image": (photo, (PHOTOS / photo).read_bytes(), "image/png")}
    response = client.post("/toonify?async=1", files=files, data={"steps": str(steps), "seed": str(seed)})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _worker_counts(client) -> dict:
    return metric_values(client.get("/metrics").text, "toonify_worker_jobs_total")


def _wait_step(client, job_id: str, step: int) -> dict:
    return wait_for(client, job_id, until=lambda job: job["status"] == "running" and job["step"] >= step)


def test_six_jobs_spread_over_two_workers_and_results_come_back_through_redis(cluster):
    c = cluster()
    metrics_port = free_port()
    c.workers.start("w1", options=["--metrics-port", str(metrics_port)])
    c.workers.start("w2")
    with c.api.client() as client:
        ready = c.wait_for_workers(client, ["w1", "w2"])
        assert ready["queue"] == "redis" and "warning" in ready  # the workers report tiny test models
        assert sorted(ready["workers"][0]) == ["busy", "engine", "name"]  # no job ids on a public endpoint
        ids = [_post(client, steps=40, seed=seed) for seed in range(6)]
        jobs = [wait_for(client, job_id, timeout_s=240) for job_id in ids]
        assert [job["status"] for job in jobs] == ["succeeded"] * 6, jobs
        assert {job["worker"] for job in jobs} == {"w1", "w2"}, (jobs, c.logs())
        counts = _worker_counts(client)
        assert counts['{outcome="succeeded",worker="w1"}'] + counts['{outcome="succeeded",worker="w2"}'] == 6
        toon = client.get("/jobs/%s/result" % ids[0])
        assert toon.status_code == 200 and toon.headers["content-type"] == "image/png"
        rendered = client.post("/jobs/%s/render?strength=0.5" % ids[0])  # runs on a worker, not the API
        assert rendered.status_code == 200 and rendered.content != toon.content
        styles = client.get("/styles").json()  # what the workers published (this API loads no models)
        assert [s["name"] for s in styles["styles"]] == ["cartoon"] and styles["styles"][0]["thumbnail"]
        styled = client.post("/jobs/%s/render?strength=0.5&style=cartoon" % ids[0])  # the style goes through RQ
        assert styled.status_code == 200 and styled.content == rendered.content
        assert client.post("/jobs/%s/render?strength=0.5&style=nope" % ids[0]).status_code == 422
        pasted = client.get("/jobs/%s/result?kind=paste&strength=0.5" % ids[0])  # the photo kept in Redis
        assert pasted.status_code == 200 and pasted.content != client.get("/jobs/%s/result?kind=paste" % ids[0]).content
    w1_stages = metric_values(httpx.get("http://127.0.0.1:%d/metrics" % metrics_port).text,
                              "toonify_stage_seconds_count")
    assert w1_stages['{stage="project"}'] == counts['{outcome="succeeded",worker="w1"}'], (w1_stages, counts)
    listed = subprocess.run([sys.executable, "-m", "app", "workers"], env=c.api.env, cwd=str(REPO),
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "w1" in listed.stdout and "w2" in listed.stdout, listed.stderr


def test_sigkilled_worker_job_is_delivered_again_and_succeeds_once_on_the_other(cluster):
    c = cluster()
    c.workers.start("w1", "w2")
    with c.api.client() as client:
        c.wait_for_workers(client, ["w1", "w2"])
        job_id = _post(client, steps=400)
        victim = _wait_step(client, job_id, 3)["worker"]
        survivor = ({"w1", "w2"} - {victim}).pop()
        c.workers.kill(victim)
        job = wait_for(client, job_id, timeout_s=180)
        assert job["status"] == "succeeded", (job, c.logs())
        assert job["attempts"] == 2 and job["worker"] == survivor
        assert client.get("/jobs/%s/result" % job_id).status_code == 200
        counts = _worker_counts(client)
        assert counts == {'{outcome="succeeded",worker="%s"}' % survivor: 1.0}  # one result, no duplicate
        c.wait_for_workers(client, [survivor])  # the dead worker's presence expired


def test_cancel_from_the_api_stops_the_job_on_the_worker_within_a_step(cluster):
    c = cluster()
    c.workers.start("w1")
    with c.api.client() as client:
        c.wait_for_workers(client, ["w1"])
        job_id = _post(client, steps=2000)
        first = _wait_step(client, job_id, 3)
        started = time.monotonic()
        later = _wait_step(client, job_id, first["step"] + 20)
        step_s = (time.monotonic() - started) / (later["step"] - first["step"])
        cancelled_at = time.monotonic()
        assert client.delete("/jobs/%s" % job_id).json()["status"] == "cancelled"
        key = '{outcome="cancelled",worker="w1"}'
        while _worker_counts(client).get(key) != 1.0:
            assert time.monotonic() - cancelled_at < 10, c.logs()
            time.sleep(0.02)
        stopped_s = time.monotonic() - cancelled_at
        # the worker polls the cancel flag every step; stopping took a tiny share of the remaining steps
        assert stopped_s < 0.1 * (2000 - later["step"]) * step_s, (stopped_s, step_s, later["step"])
        after = wait_for(client, _post(client, steps=5, seed=1))  # the worker is free for the next job
        assert after["status"] == "succeeded" and after["worker"] == "w1"
        assert client.get("/jobs/%s" % job_id).json()["status"] == "cancelled"


def test_queued_jobs_survive_a_redis_restart(cluster):
    c = cluster()
    with c.api.client() as client:
        unready = client.get("/readyz")
        assert unready.status_code == 503 and "no live worker" in unready.json()["reason"]
        ids = [_post(client, steps=10, seed=seed) for seed in range(3)]
        time.sleep(1.5)  # past the append-only file's once-a-second fsync
        c.redis.kill()
        down = client.get("/jobs/%s" % ids[0])
        assert down.status_code == 503 and down.json()["code"] == "queue_unavailable"
        assert client.get("/readyz").status_code == 503
        c.redis.start()
        assert [client.get("/jobs/%s" % job_id).json()["status"] for job_id in ids] == ["queued"] * 3
        c.workers.start("w1")
        c.wait_for_workers(client, ["w1"])
        assert [wait_for(client, job_id)["status"] for job_id in ids] == ["succeeded"] * 3


def test_full_queue_answers_429_with_retry_after(cluster):
    c = cluster(max_queue=1)
    with c.api.client() as client:
        _post(client, steps=10)
        refused = client.post("/toonify?async=1", data={"steps": "10", "seed": "7"},
                              files={"image": ("a.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")})
        assert refused.status_code == 429 and refused.json()["code"] == "queue_full"
        assert int(refused.headers["retry-after"]) >= 1


def test_a_job_past_its_timeout_fails_with_a_reason(cluster):
    c = cluster(job_timeout_s=3)
    c.workers.start("w1")
    with c.api.client() as client:
        c.wait_for_workers(client, ["w1"])
        too_long = wait_for(client, _post(client, steps=2000))
        assert too_long["status"] == "failed" and too_long["error"]["code"] == "job_timeout"
        assert "fewer steps" in too_long["error"]["message"]


def test_a_job_out_of_attempts_fails_as_worker_lost(cluster):
    c = cluster(job_attempts=1)
    c.workers.start("w1")
    with c.api.client() as client:
        c.wait_for_workers(client, ["w1"])
        job_id = _post(client, steps=2000)
        _wait_step(client, job_id, 3)
        c.workers.kill("w1")
        c.workers.start("w2")  # the live worker's maintenance finds the dead one's lease expired
        lost = wait_for(client, job_id)
        assert lost["status"] == "failed" and lost["error"]["code"] == "worker_lost" and lost["attempts"] == 1


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_frozen_redis_is_a_prompt_503_and_readyz_answers(cluster):
    """SIGSTOP'd redis-server: connections are accepted (by the kernel) but never answered. Before the
    timeouts every request waited 26.5 s for its 503 and /readyz 5 s; now each takes about one
    TOONIFY_REDIS_TIMEOUT_S (1 s). The bounds leave room for a machine three times slower."""
    c = cluster()
    photo = {"image": ("a.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")}
    with c.api.client() as client:
        assert client.get("/jobs/nosuchjob").status_code == 404
        os.kill(c.redis.process.pid, signal.SIGSTOP)
        try:
            for call in (lambda: client.get("/jobs/nosuchjob"), lambda: client.post("/toonify?async=1", files=photo),
                         lambda: client.get("/jobs/nosuchjob/result")):
                down, took_s = _timed(call)
                assert (down.status_code, down.json()["code"]) == (503, "queue_unavailable"), down.text
                assert took_s < 10 and down.headers["retry-after"], took_s
            unready, took_s = _timed(lambda: client.get("/readyz"))
            assert unready.status_code == 503 and "Redis cannot be reached" in unready.json()["reason"]
            assert took_s < 5, took_s
        finally:
            os.kill(c.redis.process.pid, signal.SIGCONT)
        assert client.get("/jobs/nosuchjob").status_code == 404  # answered again once Redis runs
