"""docker-compose.yml itself, under Debian's docker-compose: the default service, and the scale profile.

There is no GPU here, so the GPU reservations must go. Compose v1 merges override files but cannot delete a
key (`!reset` is Compose v2 only), so the test override is derived from the file's own resolved config:
`deploy` dropped, host ports made random loopback ones, the healthchecks polled every 2 s; services, images,
commands, volumes, dependencies and healthcheck commands stay exactly as the file says."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List

import httpx
import pytest

from tests.app.server import free_port, wait_for
from tests.conftest import REPO
from tests.containers.docker import docker, keep_logs, photo, png, unique, wait_healthy, wait_ready

# scripts/test-containers.sh points this at the build context it made (the repository's files).
COMPOSE_DIR = Path(os.environ.get("TOONIFY_COMPOSE_DIR", str(REPO)))
TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def resolved_config() -> Dict:
    text = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=str(COMPOSE_DIR),
                          capture_output=True, text=True, check=True).stdout
    # docker-compose's own interpreter (Debian's python3) has PyYAML; the project venvs do not need it
    return json.loads(subprocess.run(["/usr/bin/python3", "-c", TO_JSON], input=text, capture_output=True,
                                     text=True, check=True).stdout)


class Compose:
    """One compose project from the derived file; `down -v` removes its containers, network and volumes."""

    def __init__(self, tmp_path: Path) -> None:
        config = resolved_config()
        self.ports: Dict[str, int] = {}
        for name, service in config["services"].items():
            service.pop("deploy", None)
            if "ports" in service:
                self.ports[name] = free_port()
                service["ports"] = ["127.0.0.1:%d:8000" % self.ports[name]]
            if "healthcheck" in service:
                service["healthcheck"].update(interval="2s")
            if "toonify" in service.get("image", ""):
                service.setdefault("environment", {})["TOONIFY_DEFAULT_STEPS"] = "20"
        self.file = tmp_path / "compose.test.json"
        self.file.write_text(json.dumps(config))
        self.project = unique("toonifytest").replace("-", "")

    def run(self, *args: str) -> subprocess.CompletedProcess:
        command = ["docker-compose", "--profile", "scale", "-p", self.project, "-f", str(self.file),
                   "--project-directory", str(COMPOSE_DIR)] + list(args)
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, "%s: %s" % (" ".join(args), result.stderr[-2000:])
        return result

    def containers(self, service: str) -> List[str]:
        return self.run("ps", "-q", service).stdout.split()

    def down(self) -> None:
        for container in self.run("ps", "-q").stdout.split():
            keep_logs(container)
        self.run("down", "-v", "-t", "20", "--remove-orphans")


@pytest.fixture()
def compose(tmp_path):
    project = Compose(tmp_path)
    try:
        yield project
    finally:
        project.down()


def test_default_service_comes_up_healthy_and_toonifies(compose):
    compose.run("up", "-d", "--no-build", "toonify")
    [container] = compose.containers("toonify")
    url = "http://127.0.0.1:%d" % compose.ports["toonify"]
    wait_healthy(container)
    wait_ready(url)
    with httpx.Client(base_url=url, timeout=180) as client:
        assert png(client.post("/toonify", files=photo("obama.jpg"))).shape == (64, 64, 3)
    mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", container).stdout)
    assert [m["Name"] for m in mounts if m["Destination"] == "/data"] == [compose.project + "_toonify-data"]


def test_scale_profile_toonifies_through_redis_with_two_workers(compose):
    compose.run("up", "-d", "--no-build", "--scale", "worker=2", "redis", "api", "worker")
    workers = compose.containers("worker")
    assert len(workers) == 2
    for container in compose.containers("api") + workers:
        wait_healthy(container)
    url = "http://127.0.0.1:%d" % compose.ports["api"]
    ready = wait_ready(url, until=lambda body: len(body.get("workers", [])) == 2)
    assert ready["queue"] == "redis"
    with httpx.Client(base_url=url, timeout=180) as client:
        response = client.post("/toonify?async=1", files=photo("astronaut.png"), data={"steps": "10"})
        assert response.status_code == 202, response.text
        job = wait_for(client, response.json()["id"], timeout_s=240)
        assert job["status"] == "succeeded" and job["worker"] in {w["name"] for w in ready["workers"]}, job
        assert png(client.get("/jobs/%s/result" % job["id"])).shape == (64, 64, 3)
