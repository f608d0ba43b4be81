"""The API people integrate with (#17), over real uvicorn with tiny models: every face answered, render
options honoured on cache hits, unknown fields refused, the OpenAPI contract, signed webhooks with back-off,
resumable SSE, idempotent creates and per-key job lists (the Python client: test_client.py)."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
import zipfile
from typing import Dict, List

import numpy as np
import pytest
from PIL import Image

from app.api.eta import StepClock
from app.api.views import as_requested
from app.jobs.job import Job, JobStatus
from app.options import RenderOptions, ToonifyOptions
from tests.app.receiver import Receiver
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

ALICE, BOB, SECRET = "alice-key-123", "bob-key-456", "webhook-secret-789"


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _photo(name: str):
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    srv = Server(engine, tiny_models, root / "data", root / "cache", api_keys="%s,%s" % (ALICE, BOB),
                 webhook_secret=SECRET, webhook_allow_private="1", webhook_progress_interval_s="1").start()
    yield srv
    srv.stop()


@pytest.fixture()
def alice(server):
    with server.client(headers={"Authorization": "Bearer " + ALICE}) as client:
        yield client


@pytest.fixture()
def bob(server):
    with server.client(headers={"Authorization": "Bearer " + BOB}) as client:
        yield client


def test_sync_face_all_returns_every_face(alice):
    pasted = alice.post("/toonify", files=_photo("two-faces.jpg"), data={"face": "all", "output": "paste"})
    assert pasted.status_code == 200 and pasted.headers["x-toonify-faces"] == "2"
    job_id = pasted.headers["x-toonify-job"]
    photo = np.asarray(Image.open(str(PHOTOS / "two-faces.jpg")).convert("RGB")).astype(int)
    changed = np.abs(_rgb(pasted.content).astype(int) - photo).sum(axis=2) > 30
    for face in alice.get("/jobs/%s" % job_id).json()["faces"]:  # every face toonified, not only face 0
        left, top, right, bottom = face["rect"]
        assert changed[top:bottom, left:right].mean() > 0.3, face

    toons = alice.post("/toonify", files=_photo("two-faces.jpg"), data={"face": "all", "output": "toon"})
    assert toons.status_code == 200 and toons.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(toons.content)) as archive:
        assert archive.namelist() == ["toon_00.png", "toon_01.png"]
        for index, name in enumerate(archive.namelist()):
            stored = alice.get("/jobs/%s/result?face=%d&kind=toon" % (job_id, index)).content
            assert np.array_equal(_rgb(archive.read(name)), _rgb(stored))


def _pasted_here(photo_name: str, toon: np.ndarray) -> np.ndarray:
    """The photo with ``toon`` pasted on its largest face, computed in this process (dlib + the aligner)."""
    from app.faces.align import align_face
    from app.faces.decode import decode_image
    from app.faces.detect import FaceDetector
    from app.faces.paste import paste_faces

    photo = decode_image((PHOTOS / photo_name).read_bytes())
    face = FaceDetector().usable_faces(photo)[0]
    return paste_faces(photo, [toon], [align_face(photo, face.landmarks, toon.shape[0]).quad])


def test_every_path_honours_the_render_options_it_is_asked_for(alice):
    """The cache is keyed by the projection only: a job first run at strength 0.5 answers every later request
    at the strength, output and format that request asks for — sync, async result, re-render, cache hit,
    pasted photo."""
    created = alice.post("/toonify?async=1", files=_photo("obama.jpg"),
                         data={"seed": "21", "strength": "0.5", "output": "paste"})
    job_id = created.json()["id"]
    assert wait_for(alice, job_id)["status"] == "succeeded"
    toon_03 = _rgb(alice.post("/jobs/%s/render?strength=0.3" % job_id).content)  # re-render from the latents
    toon_05 = _rgb(alice.get("/jobs/%s/result?kind=toon" % job_id).content)  # as the job ran
    assert not np.array_equal(toon_03, toon_05)
    assert np.array_equal(_rgb(alice.get("/jobs/%s/result?kind=toon&strength=0.3" % job_id).content), toon_03)

    hit = alice.post("/toonify", files=_photo("obama.jpg"), data={"seed": "21", "strength": "0.3"})
    assert hit.headers["x-toonify-job"] == job_id  # a cache hit (sync) …
    assert np.array_equal(_rgb(hit.content), toon_03)  # … rendered at the strength asked for

    pasted_03 = _rgb(alice.post("/toonify", files=_photo("obama.jpg"),
                                data={"seed": "21", "strength": "0.3", "output": "paste"}).content)
    assert np.abs(pasted_03.astype(int) - _pasted_here("obama.jpg", toon_03)).max() <= 1  # the 0.3 toon, pasted
    assert np.array_equal(_rgb(alice.get("/jobs/%s/result?kind=paste&strength=0.3" % job_id).content), pasted_03)
    pasted_05 = _rgb(alice.get("/jobs/%s/result?kind=paste" % job_id).content)
    assert np.abs(pasted_05.astype(int) - _pasted_here("obama.jpg", toon_05)).max() <= 1
    hit_async = alice.post("/toonify?async=1", files=_photo("obama.jpg"), data={"seed": "21", "strength": "1"})
    assert hit_async.status_code == 200 and hit_async.json()["id"] == job_id  # finished already: 200, not 202
    view = hit_async.json()  # its links answer at the strength this request asked for
    assert view["options"]["strength"] == 1.0
    toon_10 = _rgb(alice.post("/jobs/%s/render?strength=1" % job_id).content)
    assert np.array_equal(_rgb(alice.get(view["links"]["results"][0]["toon"]).content), toon_10)
    pasted_10 = _rgb(alice.get(view["links"]["paste"]).content)
    assert np.abs(pasted_10.astype(int) - _pasted_here("obama.jpg", toon_10)).max() <= 1
    with alice.stream("POST", "/toonify", files=_photo("obama.jpg"), data={"seed": "21", "strength": "1"},
                      headers={"Accept": "text/event-stream"}) as events:  # the events of a create, likewise
        streamed = next(json.loads(line[len("data: "):]) for line in events.iter_lines() if line.startswith("data: "))
    assert streamed["id"] == job_id and streamed["options"]["strength"] == 1.0
    assert np.array_equal(_rgb(alice.get(streamed["links"]["results"][0]["toon"]).content), toon_10)
    full = alice.post("/toonify", files=_photo("obama.jpg"), data={"seed": "21", "strength": "1", "format": "jpg"})
    assert full.headers["content-type"] == "image/jpeg" and full.headers["x-toonify-job"] == job_id
    assert np.abs(_rgb(full.content).astype(int) - _rgb(alice.post("/jobs/%s/render?strength=1" % job_id).content)
                  ).mean() < 8  # the full toon, as JPEG


def test_unknown_form_field_is_422_naming_it(alice):
    response = alice.post("/toonify", files=_photo("astronaut.png"), data={"stenght": "0.5"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_option" and "'stenght'" in response.json()["message"]
    assert "strength" in response.json()["message"]  # it lists the fields there are


def test_openapi_types_the_form_bodies_errors_and_auth(server):
    import httpx

    spec = httpx.get(server.url + "/openapi.json").json()
    form = spec["components"]["schemas"]["ToonifyForm"]["properties"]
    assert form["output"]["enum"] == ["toon", "paste", "aligned", "reconstruction"]
    assert form["format"]["enum"] == ["png", "jpeg", "webp"]
    assert (form["strength"]["minimum"], form["strength"]["maximum"], form["strength"]["default"]) == (0, 1, 1)
    assert form["steps"]["default"] == 20 and form["image"]["format"] == "binary"
    operation = spec["paths"]["/toonify"]["post"]
    assert operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].endswith("/ToonifyForm")
    assert operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobView")
    for status in ("400", "401", "413", "415", "422", "429", "503", "507"):
        assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    assert spec["paths"]["/jobs/{job_id}"]["get"]["responses"]["404"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert operation["security"] == [{"bearerAuth": []}]
    assert "HTTPValidationError" not in json.dumps(spec)
    assert "string|null" not in json.dumps(form)


JSON_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool,
              "null": type(None)}


def _misfits(value, schema: Dict, spec: Dict, where: str = "$") -> List[str]:
    """Where ``value`` does not fit ``schema`` (the OpenAPI subset pydantic writes: $ref, anyOf, type, enum,
    const, properties, required, additionalProperties, items): every key it sends must be documented, every
    required one sent, each of the documented type."""
    if "$ref" in schema:
        return _misfits(value, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], spec, where)
    if "anyOf" in schema:
        tries = [_misfits(value, option, spec, where) for option in schema["anyOf"]]
        return min(tries, key=len)
    kind = schema.get("type")
    mistyped = kind is not None and not isinstance(value, JSON_TYPES[kind])
    if mistyped or (isinstance(value, bool) and kind not in (None, "boolean")):
        return ["%s: %r is not of type %s" % (where, value, kind)]
    if ("enum" in schema and value not in schema["enum"]) or ("const" in schema and value != schema["const"]):
        return ["%s: %r is not one of %s" % (where, value, schema.get("enum", [schema.get("const")]))]
    problems: List[str] = []
    if kind == "object":
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        problems += ["%s.%s: required, not sent" % (where, name) for name in schema.get("required", ())
                     if name not in value]
        for name, item in value.items():
            if name in properties or isinstance(extra, dict):
                problems += _misfits(item, properties.get(name, extra), spec, "%s.%s" % (where, name))
            elif properties:
                problems.append("%s.%s: sent, not documented" % (where, name))
    if kind == "array":
        for index, item in enumerate(value):
            problems += _misfits(item, schema.get("items", {}), spec, "%s[%d]" % (where, index))
    return problems


def test_the_openapi_job_schema_is_what_the_job_routes_answer(server, alice):
    import httpx

    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]

    def answer(path: str, method: str, status: str) -> Dict:
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]

    job_view = {"$ref": "#/components/schemas/JobView"}
    assert answer("/jobs/{job_id}", "get", "200") == job_view and answer("/toonify", "post", "202") == job_view
    created = alice.post("/toonify?async=1", files=_photo("two-faces.jpg"), data={"steps": "3", "seed": "90",
                                                                                  "face": "all"})
    assert created.status_code == 202 and _misfits(created.json(), job_view, spec) == []
    done = wait_for(alice, created.json()["id"])
    assert done["status"] == "succeeded" and len(done["links"]["results"]) == 2 and done["styles"]
    assert _misfits(done, answer("/jobs/{job_id}", "get", "200"), spec) == []
    assert _misfits(alice.get("/jobs?limit=2").json(), answer("/jobs", "get", "200"), spec) == []
    deleted = alice.delete("/jobs/" + done["id"]).json()
    assert deleted == {"id": done["id"], "status": "succeeded", "deleted": True}
    assert _misfits(deleted, answer("/jobs/{job_id}", "delete", "200"), spec) == []
    assert _misfits(dict(done, surprise=1), job_view, spec) == ["$.surprise: sent, not documented"]  # it can fail


def test_config_says_defaults_limits_and_test_models(server):
    import httpx

    config = httpx.get(server.url + "/config").json()  # open: the page reads it before any key is typed
    assert config["defaults"]["steps"] == 20 and config["limits"]["max_steps"] == 2000
    assert config["test_models"] is True and "TEST models" in config["test_models_warning"]
    assert config["auth"] is True and config["webhooks"] is True


def test_webhooks_are_signed_rate_limited_and_retried_with_backoff(alice):
    good, failing = Receiver(), Receiver(fail_first=2)
    try:
        job = alice.post("/toonify?async=1", files=_photo("astronaut.png"),
                         data={"steps": "60", "seed": "31", "webhook": good.url}).json()
        wait_for(alice, job["id"])
        good.wait(2)
        time.sleep(1.0)
        events = good.events()
        assert events[0] == "start" and events[-1] == "completed" and events.count("completed") == 1
        progress_times = [c["at"] for c in good.calls if json.loads(c["body"])["event"] == "progress"]
        assert all(b - a >= 0.9 for a, b in zip(progress_times, progress_times[1:]))  # ≤ 1 per second
        for call in good.calls:
            expected = "sha256=" + hmac.new(SECRET.encode(), call["body"], hashlib.sha256).hexdigest()
            assert call["headers"]["X-Toonify-Signature"] == expected
        assert json.loads(good.calls[-1]["body"])["job"]["status"] == "succeeded"

        alice.post("/toonify?async=1", files=_photo("astronaut.png"), data={
            "steps": "3", "seed": "32", "webhook": failing.url, "webhook_events_filter": "completed"})
        failing.wait(3, timeout_s=60)
        gaps = [b["at"] - a["at"] for a, b in zip(failing.calls, failing.calls[1:])]
        assert gaps[0] >= 0.9 and gaps[1] >= 1.8 and gaps[1] > gaps[0]  # exponential back-off
        assert [c["headers"]["X-Toonify-Attempt"] for c in failing.calls[:3]] == ["1", "2", "3"]
        time.sleep(1.0)
        assert failing.events() == ["completed"] * 3  # delivered once it was acknowledged, then no more
    finally:
        good.http.shutdown()
        failing.http.shutdown()


def test_webhook_urls_are_checked(alice):
    response = alice.post("/toonify", files=_photo("astronaut.png"), data={"webhook": "ftp://example.org/x"})
    assert response.status_code == 422 and "http" in response.json()["message"]
    response = alice.post("/toonify", files=_photo("astronaut.png"),
                          data={"webhook": "http://127.0.0.1:9/", "webhook_events_filter": "finish"})
    assert response.status_code == 422 and "finish" in response.json()["message"]


def _job_events(lines, count: int) -> List[Dict]:
    events, current = [], {}
    for line in lines:
        if not line:
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    break
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return events


def test_sse_carries_ids_and_resumes_after_last_event_id(alice):
    job_id = alice.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "40", "seed": "41"}).json()["id"]
    with alice.stream("GET", "/jobs/%s/events" % job_id) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        first = _job_events(lines, 3)
    ids = [int(event["id"]) for event in first]
    assert ids == sorted(set(ids))
    with alice.stream("GET", "/jobs/%s/events" % job_id, headers={"Last-Event-ID": str(ids[-1])}) as stream:
        rest = _job_events(stream.iter_lines(), 1000)
    assert rest and all(int(event["id"]) > ids[-1] for event in rest)
    assert json.loads(rest[-1]["data"])["status"] == "succeeded"
    done = alice.get("/jobs/%s/events" % job_id, headers={"Last-Event-ID": rest[-1]["id"]})
    assert done.status_code == 204  # seen it all: an EventSource stops reconnecting


def test_accept_event_stream_on_create_streams_the_job(alice):
    with alice.stream("POST", "/toonify", files=_photo("astronaut.png"), data={"steps": "10", "seed": "42"},
                      headers={"Accept": "text/event-stream"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        job_id = stream.headers["x-toonify-job"]
        events = _job_events(stream.iter_lines(), 1000)
    assert json.loads(events[-1]["data"])["status"] == "succeeded" and json.loads(events[-1]["data"])["id"] == job_id


def test_idempotency_key_returns_the_same_job(alice):
    key = {"Idempotency-Key": "retry-me-1", "Prefer": "respond-async"}
    first = alice.post("/toonify", files=_photo("astronaut.png"), data={"steps": "2000", "seed": "51"}, headers=key)
    wait_for(alice, first.json()["id"], statuses=("running",))
    alice.delete("/jobs/%s" % first.json()["id"])  # a cancelled job is never a cache hit …
    retried = alice.post("/toonify", files=_photo("astronaut.png"), data={"steps": "2000", "seed": "51"}, headers=key)
    assert retried.json()["id"] == first.json()["id"] and retried.json()["status"] == "cancelled"  # … but the key
    fresh = alice.post("/toonify?async=1", files=_photo("astronaut.png"), data={"steps": "2000", "seed": "51"})
    assert fresh.json()["id"] != first.json()["id"]
    alice.delete("/jobs/%s" % fresh.json()["id"])
    other = alice.post("/toonify", files=_photo("obama.jpg"), data={"steps": "2000", "seed": "51"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["message"]


def test_job_list_is_per_key_newest_first_and_paginated(alice, bob):
    mine = [alice.post("/toonify?async=1", files=_photo("astronaut.png"), data={"steps": "2", "seed": str(60 + i)})
            .json()["id"] for i in range(3)]
    theirs = bob.post("/toonify?async=1", files=_photo("astronaut.png"), data={"steps": "2", "seed": "70"}).json()["id"]
    page = alice.get("/jobs?limit=2").json()
    assert [job["id"] for job in page["jobs"]] == mine[::-1][:2]
    rest = alice.get(page["next"]).json()
    assert mine[0] in [job["id"] for job in rest["jobs"]]
    everything = [job["id"] for job in page["jobs"] + rest["jobs"]]
    assert theirs not in everything and len(everything) == len(set(everything))
    assert [job["id"] for job in bob.get("/jobs").json()["jobs"]] == [theirs]


def _job(step: int, updated_at: float, total: int = 100) -> Job:
    return Job("j", "", JobStatus.RUNNING, "projecting", step, total, ToonifyOptions(), "", [], 1, None, None, None,
               0.0, 0.0, updated_at, None)


def test_eta_counts_steady_state_steps_only():
    clock = StepClock()
    assert clock.seconds_left(_job(1, 100.0)) is None  # step 1 came after a 99 s graph build: unknown yet
    assert clock.seconds_left(_job(11, 110.0)) == pytest.approx(89.0)  # 1 s per step since then


def test_a_create_that_finds_its_job_sees_it_at_its_own_options():
    links = {"self": "/jobs/j", "paste": "/jobs/j/result?kind=paste&sig=s", "archive": "/jobs/j/archive?sig=s",
             "results": [{"face": 0, "toon": "/jobs/j/result?face=0&kind=toon&sig=s",
                          "latents": "/jobs/j/result?face=0&kind=latents&sig=s"}]}
    view = {"id": "j", "options": RenderOptions().model_dump(), "links": links}
    assert as_requested(view, RenderOptions()) is view  # the same options: its JSON is reused as it is
    other = as_requested(view, RenderOptions(strength=0.5, format="webp"))
    assert other["options"]["strength"] == 0.5 and other["options"]["format"] == "webp"
    assert other["links"]["paste"] == "/jobs/j/result?kind=paste&sig=s&strength=0.5&format=webp"
    assert other["links"]["results"][0]["latents"] == links["results"][0]["latents"]  # latents take no options
    assert view["options"] == RenderOptions().model_dump()  # the shared view is left as it was
    styled = as_requested(view, RenderOptions(style="other"))
    assert styled is not view and styled["options"]["style"] == "other" and styled["links"] == links
