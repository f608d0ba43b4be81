"""Nothing a request sends answers 5xx: a bounded random walk over the form fields, query strings and content
types of every route, on a real server, plus HEAD wherever GET exists and the statuses the README names."""
from __future__ import annotations

import random

import pytest

from tests.app.server import Server
from tests.conftest import PHOTOS

REQUESTS = 160
VALUES = ["", "0", "1", "-1", "2", "3", "7", "63", "64", "2000", "2001", "1e9", "0.5", "1.0", "1.5", "-0.1", "nan",
          "inf", "all", "largest", "LARGEST", " 1 ", "png", "jpeg", "jpg", "webp", "gif", "xyz", "toon", "paste",
          "aligned", "reconstruction", "other", "true", "null", "%00", "\u00e9\u00e8", "9" * 40, "x" * 3000]
FIELDS = ["face", "steps", "seed", "strength", "output", "format", "async", "kind", "unknown"]


def _photo(name: str):
    return {"image": (name, (PHOTOS / name).read_bytes(), "image/png")}


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("no-5xx")
    srv = Server(engine, tiny_models, root / "data", root / "cache", max_steps=50).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def done_job(server):
    with server.client() as client:
        response = client.post("/toonify", files=_photo("astronaut.png"), data={"steps": "2"})
        assert response.status_code == 200
        return response.headers["x-toonify-job"]


def _random_params(rng: random.Random) -> dict:
    return {rng.choice(FIELDS): rng.choice(VALUES) for _ in range(rng.randrange(0, 4))}


def test_random_requests_never_answer_5xx(server, done_job):
    rng = random.Random(15)
    cat = (PHOTOS / "chelsea.png").read_bytes()  # no face: valid options end in 422, not in a queued job
    with server.client() as client:
        for _ in range(REQUESTS):
            kind = rng.randrange(5)
            job = rng.choice([done_job, "unknown-job", "%2e%2e", done_job + "x"])
            if kind == 0:
                response = client.post("/toonify", params=_random_params(rng), data=_random_params(rng),
                                       files={"image": ("cat.png", cat, rng.choice(["image/png", "text/plain"]))})
            elif kind == 1:
                response = client.post("/toonify", data=_random_params(rng),
                                       headers={"content-type": rng.choice(["", "text/plain", "multipart/form-data",
                                                                            "application/x-www-form-urlencoded"])})
            elif kind == 2:
                response = client.get("/jobs/%s/result" % job, params=_random_params(rng))
            elif kind == 3:
                response = client.post("/jobs/%s/render" % job, params=_random_params(rng))
            else:  # the finished job is kept for the other tests: DELETE goes to the other ids
                method = rng.choice(["GET", "HEAD", "DELETE", "PUT"])
                response = client.request(method, "/jobs/%s" % (job if method != "DELETE" else job + "x"),
                                          params=_random_params(rng))
            assert response.status_code < 500, (response.request.method, response.request.url, response.text)
            if response.status_code >= 400 and response.request.method != "HEAD":
                assert set(response.json()) == {"code", "message"}


@pytest.mark.parametrize("path", ["/jobs/{id}/result?format=xyz", "/jobs/{id}/render?strength=0.5&format=xyz"])
def test_unknown_formats_are_422(server, done_job, path):
    with server.client() as client:
        method = "POST" if "render" in path else "GET"
        response = client.request(method, path.format(id=done_job))
        assert response.status_code == 422 and response.json()["code"] == "invalid_option"
        message = response.json()["message"]
        assert "format" in message and all(name in message for name in ("png", "jpeg", "webp"))


def test_head_wherever_get_exists(server, done_job):
    with server.client() as client:
        for path in ("/healthz", "/readyz", "/metrics", "/jobs/%s" % done_job, "/jobs/%s/result" % done_job,
                     "/jobs/%s/events" % done_job, "/"):
            got, head = client.get(path), client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
        assert client.head("/jobs/nope").status_code == 404


def test_readme_statuses(server):
    with server.client() as client:
        text_field = client.post("/toonify", data={"image": "not a file"},
                                 files={"other": ("x.txt", b"x", "text/plain")})
        assert text_field.status_code == 400 and text_field.json()["code"] == "missing_image"
        no_type = client.post("/toonify", content=(PHOTOS / "obama.jpg").read_bytes())
        assert "content-type" not in no_type.request.headers
        assert no_type.status_code == 415 and no_type.json()["code"] == "unsupported_media_type"
