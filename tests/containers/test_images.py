"""Both images as built by scripts/test-containers.sh (tiny test models baked in), checked running."""
from __future__ import annotations

import json

import pytest

from tests.app.server import wait_for
from tests.containers.docker import Service, docker, photo, png


@pytest.fixture(scope="module", params=["toonify:tf1", "toonify:torch"])
def service(request):
    srv = Service(request.param)
    try:
        yield srv.start()
    finally:
        srv.remove()


@pytest.fixture()
def client(service):
    with service.client() as c:
        yield c


def test_healthcheck_turns_healthy_and_ready(service, client):
    health = json.loads(docker("inspect", "-f", "{{json .State.Health}}", service.name).stdout)
    assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "stylegan2-ffhq-config-f.pkl" in ready.json()["models"]


def test_photo_in_png_face_out(client):
    toon = png(client.post("/toonify", files=photo("astronaut.png"), data={"seed": "1"}))
    assert toon.shape == (64, 64, 3) and toon.std() > 0


def test_async_job_reports_progress_over_sse(client):
    response = client.post("/toonify?async=1", files=photo("obama.jpg"), data={"steps": "10", "seed": "2"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    steps = []
    with client.stream("GET", "/jobs/%s/events" % job_id) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                view = json.loads(line[5:])
                steps.append(view["step"])
                if view["status"] in ("succeeded", "failed"):
                    assert view["status"] == "succeeded", view
                    break
    assert steps == sorted(steps) and steps[-1] == 10
    assert png(client.get("/jobs/%s/result?face=0&kind=toon" % job_id)).shape == (64, 64, 3)


def test_photo_without_a_face_is_422(client):
    response = client.post("/toonify", files=photo("chelsea.png"))
    assert response.status_code == 422 and response.json()["code"] == "no_face"


def test_runs_as_uid_1000_with_read_only_models(service):
    status = service.exec("cat", "/proc/1/status").stdout
    assert [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")] == [["1000"] * 4]
    denied = service.exec("touch", "/models/stylegan2-ffhq-config-f.pkl")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert service.exec("touch", "/data/writable").returncode == 0


def test_results_survive_a_restart(service, client):
    first = client.post("/toonify", files=photo("obama.jpg"), data={"seed": "3"})
    job_id, toon = first.headers["x-toonify-job"], png(first)
    service.restart()
    with service.client() as again:
        assert (png(again.get("/jobs/%s/result?face=0&kind=toon" % job_id)) == toon).all()


def test_docker_stop_mid_job_loses_nothing(service):
    """SIGTERM then SIGKILL after the grace period: the job either ends or is queued again after the restart."""
    steps = 40
    with service.client() as client:
        job_id = client.post("/toonify?async=1", files=photo("astronaut.png"),
                             data={"steps": str(steps), "seed": "4"}).json()["id"]
        at_stop = wait_for(client, job_id, until=lambda job: job["status"] == "running" and job["step"] >= 2)
    docker("stop", "-t", "5", service.name)
    docker("start", service.name)
    service.wait()
    with service.client() as client:
        job = wait_for(client, job_id, timeout_s=300)
        assert at_stop["step"] < steps and job["status"] == "succeeded", job
        assert png(client.get("/jobs/%s/result" % job_id)).shape == (64, 64, 3)
