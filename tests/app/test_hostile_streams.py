"""Bounded observability and streams over a real uvicorn: metric labels are route templates whatever paths and
methods arrive, event streams are capped with a clear 503, and a full house of idle streams leaves /healthz
as fast as it was without them (one shared poller, no per-client polling on the event loop)."""
from __future__ import annotations

import http.client
import threading
import time
import uuid

import httpx
import pytest

from tests.app.latency import assert_not_slower, healthz_timings
from tests.app.scale import metric_values
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

MAX_STREAMS = 40


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-streams")
    srv = Server(engine, tiny_models, root / "data", root / "cache", max_streams=MAX_STREAMS).start()
    yield srv
    srv.stop()


def test_metric_labels_stay_a_fixed_set(server):
    with server.client() as client:
        before = len(client.get("/metrics").text)
        for i in range(300):
            client.get("/%s/%d" % (uuid.uuid4().hex, i))
            client.get("/jobs/%s" % uuid.uuid4().hex)
        for method in ("PROPFIND", "FOO%d" % 1, "BREW", "X" * 30):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request(method, "/healthz")
            connection.getresponse().read()
            connection.close()
        text = client.get("/metrics").text
    requests = metric_values(text, "toonify_requests_total")
    routes = {labels.split('route="')[1].split('"')[0] for labels in requests}
    methods = {labels.split('method="')[1].split('"')[0] for labels in requests}
    assert routes <= {"unmatched", "/healthz", "/metrics", "/readyz", "/jobs/{job_id}"}, routes
    assert "unmatched" in routes and "/jobs/{job_id}" in routes
    assert methods <= {"GET", "OTHER"} and "OTHER" in methods
    assert len(text) - before < 5000


def test_streams_are_capped_and_idle_ones_cost_the_loop_nothing(server):
    photo = {"image": ("o.jpg", (PHOTOS / "obama.jpg").read_bytes())}
    with server.client() as client:
        job_id = client.post("/toonify?async=1", files=photo, data={"steps": "2000", "seed": "21"}).json()["id"]
        wait_for(client, job_id, statuses=("running",))
    baseline = healthz_timings(server.port)  # the same running job, no streams yet
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(MAX_STREAMS)]
    streams = []
    try:
        for c in clients:
            stream = c.stream("GET", "/jobs/%s/events" % job_id)
            response = stream.__enter__()
            assert response.status_code == 200
            streams.append(stream)
        with server.client() as client:
            refused = client.get("/jobs/%s/events" % job_id)
            assert refused.status_code == 503 and refused.json()["code"] == "too_many_streams"
            assert "GET /jobs/" in refused.json()["message"] and refused.headers["retry-after"]
        assert_not_slower(healthz_timings(server.port), baseline)
    finally:
        closer = [threading.Thread(target=s.__exit__, args=(None, None, None)) for s in streams]
        for thread in closer:
            thread.start()
        for thread in closer:
            thread.join()
        for c in clients:
            c.close()
    with server.client() as client:
        deadline = time.monotonic() + 10
        while True:
            with client.stream("GET", "/jobs/%s/events" % job_id) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "closed streams were not given back"
            time.sleep(0.2)
        client.delete("/jobs/%s" % job_id)
