"""Memory of what is done to a whole 49-MP photo after its upload, over a real uvicorn with tiny models (peak RSS
of the server process above its RSS just before, as in test_hostile_memory): a job on it stays within the worker's
stated budget (bench.memory_paths: decode, landmarks, align, paste and PNG of the photo, ~10 B/px), and three
concurrent re-pastes at another strength stay within the decode budget they are charged to."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from bench.decode_memory import MB
from bench.memory_paths import PHOTO_SIZE, photo_jpeg, worker_budget_bytes
from tests.app.rss import PeakRss
from tests.app.server import Server, wait_for

BUDGET_MB = 1024  # TOONIFY_DECODE_MEMORY_MB's default


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("memory-paths")
    srv = Server(engine, tiny_models, root / "data", root / "cache", decode_memory_mb=BUDGET_MB).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def big_job(server):
    """A finished job on a 49-MP photo, and the server's peak RSS above idle while it was made and run."""
    with server.client(timeout=600) as client, PeakRss(server.process.pid) as rss:
        made = client.post("/toonify?async=1", files={"image": ("big.jpg", photo_jpeg())}, data={"steps": "2"})
        assert made.status_code == 202, made.text
        job = wait_for(client, made.json()["id"], timeout_s=600)
    assert job["status"] == "succeeded", job
    return job, rss.peak_mb


def test_a_49mp_job_stays_within_the_worker_budget(big_job):
    _, peak_mb = big_job
    budget_mb = worker_budget_bytes(PHOTO_SIZE[0] * PHOTO_SIZE[1]) / MB
    print("a job on a %d×%d photo: peak RSS above idle %.0f MB (budget %.0f MB)" % (PHOTO_SIZE + (peak_mb, budget_mb)))
    assert peak_mb < budget_mb


def test_concurrent_repastes_are_charged_to_the_decode_budget(server, big_job):
    job, _ = big_job
    url = "/jobs/%s/result?kind=paste&strength=0.3&format=jpeg" % job["id"]  # not the job's 1.0: a re-paste

    def repaste(_):
        with server.client(timeout=600) as client:
            return client.get(url)

    with PeakRss(server.process.pid) as rss, ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(repaste, range(3)))
    print("3 concurrent re-pastes of a 49-MP job: peak RSS above idle %.0f MB (budget %d MB)"
          % (rss.peak_mb, BUDGET_MB))
    assert [answer.status_code for answer in answers] == [200] * 3, answers[0].text
    assert answers[0].headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(answers[0].content)).size == PHOTO_SIZE
    assert rss.peak_mb < BUDGET_MB
