"""Admission before work, over a real uvicorn: 200 concurrent uploads against a queue limit of 16 accept exactly
16, in both stores (SQLite with the in-process worker; Redis with a real redis-server), the rest get a fast 429
with Retry-After; a photo with more faces than a job may take is a clear 422."""
from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.app.hostile import multipart_body
from tests.app.scale import Cluster
from tests.app.server import Server
from tests.conftest import PHOTOS

LIMIT = 16
UPLOADS = 200
NEVER_ENDING = 2000  # projection steps (the most allowed): accepted jobs outlast the burst


def _upload(port: int, seed: int, photo: bytes):
    body, content_type = multipart_body({"seed": str(seed), "steps": str(NEVER_ENDING)}, photo)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    connection.request("POST", "/toonify?async=1", body, {"Content-Type": content_type})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.getheader("Retry-After"), time.perf_counter() - started


def _burst(port: int):
    photo = (PHOTOS / "obama.jpg").read_bytes()
    with ThreadPoolExecutor(UPLOADS) as pool:
        return list(pool.map(lambda seed: _upload(port, seed, photo), range(UPLOADS)))


def _assert_exactly_the_limit(port: int, results) -> None:
    statuses = [status for status, _, _ in results]
    assert statuses.count(202) == LIMIT, sorted(set(statuses))
    assert statuses.count(429) == UPLOADS - LIMIT
    assert all(retry and int(retry) >= 1 for status, retry, _ in results if status == 429)
    # admission comes before any decoding: with the queue full, even a file that is no image at all gets the
    # 429 (not a 415), and at once
    status, retry, seconds = _upload(port, UPLOADS, b"not an image at all")
    assert status == 429 and int(retry) >= 1
    assert seconds < 0.5, seconds


@pytest.fixture(scope="module")
def local_server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("admission-local")
    srv = Server(engine, tiny_models, root / "data", root / "cache", max_queue=LIMIT,
                 max_faces=1).start()
    yield srv
    srv.stop()


def test_more_faces_than_a_job_may_take_is_422(local_server):
    with local_server.client() as client:
        files = {"image": ("two.jpg", (PHOTOS / "two-faces.jpg").read_bytes())}
        response = client.post("/toonify", files=files, data={"face": "all", "steps": "2"})
        assert response.status_code == 422 and response.json()["code"] == "too_many_faces"
        assert "at most 1" in response.json()["message"]
        one = client.post("/toonify", files=files, data={"face": "1", "steps": "2"})
        assert one.status_code == 200 and one.headers["x-toonify-faces"] == "1"


def test_queue_limit_holds_under_200_concurrent_uploads_sqlite(local_server):
    _assert_exactly_the_limit(local_server.port, _burst(local_server.port))
    with local_server.client() as client:
        assert client.get("/readyz").json()["queue_depth"] == LIMIT


def test_queue_limit_holds_under_200_concurrent_uploads_redis(engine, tiny_models, tmp_path):
    """No worker runs: every accepted job stays queued in Redis."""
    cluster = Cluster(engine, tiny_models, tmp_path, tmp_path / "cache", max_queue=LIMIT)
    try:
        _assert_exactly_the_limit(cluster.api.port, _burst(cluster.api.port))
        assert cluster.redis.client().zcard("toonify:active") == LIMIT
        assert cluster.redis.client().zcard("toonify:reserved") == 0
    finally:
        cluster.close()
