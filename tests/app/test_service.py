"""The service end to end: real uvicorn on a loopback port, tiny models, real dlib and engine."""
from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.hostile import corpus
from tests.app.latency import assert_not_slower, healthz_timings
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS


def _png(response: httpx.Response) -> np.ndarray:
    assert response.headers["content-type"] == "image/png", response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def _photo(name: str):
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wstats-cache")


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("service")
    srv = Server(engine, tiny_models, root / "data", cache_dir).start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(server):
    with server.client() as c:
        yield c


def test_post_photo_returns_the_toon(client):
    response = client.post("/toonify", files=_photo("astronaut.png"))
    assert response.status_code == 200
    assert _png(response).shape == (64, 64, 3)
    assert response.headers["x-toonify-faces"] == "1"


def test_async_job_reports_increasing_steps_and_serves_results(client):
    response = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "15", "seed": "3"})
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.headers["location"] == "/jobs/%s" % job_id
    steps, event = [], ""
    with client.stream("GET", "/jobs/%s/events" % job_id) as events:
        for line in events.iter_lines():
            event = line[6:].strip() if line.startswith("event:") else event
            if line.startswith("data:") and event == "job":  # not a live preview's (a slow run has some)
                view = json.loads(line[5:])
                steps.append(view["step"])
                if view["status"] == "succeeded":
                    break
    assert steps and steps == sorted(steps) and steps[-1] == 15
    assert _png(client.get("/jobs/%s/result?face=0&kind=toon" % job_id)).shape == (64, 64, 3)
    assert _png(client.get("/jobs/%s/result?kind=aligned" % job_id)).shape == (64, 64, 3)


def test_all_faces_and_paste(client):
    response = client.post("/toonify", files=_photo("two-faces.jpg"), data={"face": "all", "output": "paste"})
    assert response.status_code == 200 and response.headers["x-toonify-faces"] == "2"
    assert _png(response).shape == (512, 921, 3)
    job_id = response.headers["x-toonify-job"]
    job = client.get("/jobs/%s" % job_id).json()
    assert len(job["faces"]) == 2 and len(job["links"]["results"]) == 2
    assert _png(client.get("/jobs/%s/result?face=1" % job_id)).shape == (64, 64, 3)
    assert client.get("/jobs/%s/result?face=2" % job_id).status_code == 404


def test_identical_request_is_served_from_the_finished_job(client):
    first = client.post("/toonify", files=_photo("astronaut.png"), data={"seed": "9"})
    second = client.post("/toonify", files=_photo("astronaut.png"), data={"seed": "9"})
    assert first.headers["x-toonify-job"] == second.headers["x-toonify-job"]
    assert first.content == second.content
    metrics = client.get("/metrics").text
    assert "toonify_cache_hits_total 1.0" in metrics or "toonify_cache_hits_total 2.0" in metrics


def test_cat_is_422_no_face(client):
    response = client.post("/toonify", files=_photo("chelsea.png"))
    assert response.status_code == 422
    assert response.json()["code"] == "no_face" and "face" in response.json()["message"]


def test_strength_rerender(client):
    plain = client.post("/toonify", files=_photo("obama.jpg"), data={"seed": "4"})
    job_id = plain.headers["x-toonify-job"]
    one = _png(client.post("/jobs/%s/render?strength=1" % job_id))
    zero = _png(client.post("/jobs/%s/render?strength=0" % job_id))
    half = _png(client.post("/jobs/%s/render?strength=0.5" % job_id))
    assert np.array_equal(one, _png(plain))
    assert not np.array_equal(zero, one) and not np.array_equal(half, one)
    assert np.array_equal(zero, _png(client.get("/jobs/%s/result?kind=reconstruction" % job_id)))
    assert client.post("/jobs/%s/render?strength=7" % job_id).status_code == 422


def test_healthz_stays_fast_while_projecting(server, client):
    """A projection in the worker must not hold the event loop: /healthz while one runs is compared with /healthz
    just before it, in this test (a loaded CI machine slows both alike)."""
    baseline = healthz_timings(server.port, 50)
    job_id = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "400", "seed": "77"})
    job_id = job_id.json()["id"]
    wait_for(client, job_id, statuses=("running",))
    while client.get("/jobs/%s" % job_id).json()["step"] < 2:
        time.sleep(0.05)
    timings = healthz_timings(server.port, 50)
    assert client.get("/jobs/%s" % job_id).json()["status"] == "running"  # it really overlapped
    assert_not_slower(timings, baseline)
    client.delete("/jobs/%s" % job_id)


def test_cancel_stops_within_one_step_and_deletes_files(client, server):
    response = client.post("/toonify?async=1", files=_photo("astronaut.png"), data={"steps": "2000", "seed": "5"})
    job_id = response.json()["id"]
    while client.get("/jobs/%s" % job_id).json()["step"] < 3:
        time.sleep(0.05)
    assert client.delete("/jobs/%s" % job_id).json()["status"] == "cancelled"
    step_at_cancel = client.get("/jobs/%s" % job_id).json()["step"]
    time.sleep(1.0)
    job = client.get("/jobs/%s" % job_id).json()
    assert job["status"] == "cancelled" and job["step"] <= step_at_cancel + 1
    assert client.get("/jobs/%s/result" % job_id).status_code == 409
    data_dir = server.env["TOONIFY_DATA_DIR"]
    import pathlib
    assert not (pathlib.Path(data_dir) / "jobs" / job_id).exists()


def _assert_json_4xx(response: httpx.Response, code: str = None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert body["message"] and "Traceback" not in response.text
    if code:
        assert body["code"] == code, body


@pytest.mark.parametrize("name, data, code", corpus(), ids=[c[0] for c in corpus()])
def test_hostile_uploads(client, name, data, code):
    response = client.post("/toonify", files={"image": (name, data, "image/jpeg")}, data={"steps": "2"})
    if code is None:  # decodes fine: a toon if it shows a face (the CMYK portrait does), else no_face
        if response.status_code != 200:
            _assert_json_4xx(response, "no_face")
    else:
        _assert_json_4xx(response, code)


def test_bad_requests_get_json_4xx(client, server):
    photo = (PHOTOS / "astronaut.png").read_bytes()
    _assert_json_4xx(client.post("/toonify", data={"steps": "5"}, files={"other": ("x", b"1")}), "missing_image")
    _assert_json_4xx(client.post("/toonify", files=[("image", ("a.png", photo)), ("image", ("b.png", photo))]),
                     "too_many_files")
    _assert_json_4xx(client.post("/toonify", content=json.dumps({"image": "x"}),
                                 headers={"content-type": "application/json"}), "invalid_option")  # not a URL
    _assert_json_4xx(client.post("/toonify", content=b"x", headers={"content-type": "text/plain"}),
                     "unsupported_media_type")
    _assert_json_4xx(client.post("/toonify", files=_photo("astronaut.png"), data={"steps": "-1"}), "invalid_option")
    _assert_json_4xx(client.post("/toonify", files=_photo("astronaut.png"), data={"strength": "7"}), "invalid_option")
    _assert_json_4xx(client.get("/jobs/not-a-real-job"), "not_found")
    big = b"\0" * (60 * 1024 * 1024)
    _assert_json_4xx(client.post("/toonify", files={"image": ("big.jpg", big)}), "upload_too_large")

    def chunks():
        for _ in range(60):
            yield b"\0" * (1024 * 1024)

    chunked = client.post("/toonify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    _assert_json_4xx(chunked, "upload_too_large")
    assert client.get("/readyz").status_code == 200


def test_readyz_names_models_and_warns_about_tiny_ones(client):
    body = client.get("/readyz").json()
    assert body["ready"] and "stylegan2-ffhq-config-f.pkl" in body["models"] and "TEST models" in body["warning"]


def test_metrics_expose_routes_stages_and_outcomes(client):
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'toonify_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'toonify_stage_seconds_bucket{le="0.5",stage="project"}' in text
    assert 'toonify_jobs_total{outcome="succeeded",reason=""}' in text
    assert "toonify_queue_depth" in text


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    assert "/toonify" in client.get("/openapi.json").json()["paths"]
