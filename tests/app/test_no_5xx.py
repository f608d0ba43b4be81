"""Nothing a request sends answers 5xx: a bounded random walk over the form fields, query strings and content
types of every route, on a real server, plus HEAD wherever GET exists and the statuses the README names; and a
grid of every route × parameter (query, form field, header) × hostile value (Unicode digits, huge numbers,
NaN/Inf, empty, repeated, non-ASCII bytes) in both stores (SQLite; Redis with a real redis-server), where no
answer is a 5xx, no traceback reaches the log, and only ASCII digits are numbers."""
from __future__ import annotations

import random
from typing import List, NamedTuple, Optional
from urllib.parse import quote_from_bytes

import httpx
import pytest

from tests.app.scale import Cluster
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

REQUESTS = 160
VALUES = ["", "0", "1", "-1", "2", "3", "7", "63", "64", "2000", "2001", "1e9", "0.5", "1.0", "1.5", "-0.1", "nan",
          "inf", "all", "largest", "LARGEST", " 1 ", "png", "jpeg", "jpg", "webp", "gif", "xyz", "toon", "paste",
          "aligned", "reconstruction", "latents", "other", "true", "null", "%00", "\u00e9\u00e8", "9" * 40, "x" * 3000]
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
                route = rng.choice(["result", "archive"])
                response = client.get("/jobs/%s/%s" % (job, route), params=_random_params(rng))
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
                     "/jobs/%s/archive" % done_job, "/jobs/%s/events" % done_job, "/"):
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


# -- the grid: every route × parameter × hostile value, in both stores ---------------------------------------------
KEY = "fuzz-key-1"
UNICODE_DIGITS = ["\u0661", "\u00b2", "\u00b9", "\uff15", "\u07c1", "\U0001d7cf"]  # ١ ² ¹ ５ ߁ 𝟏
NOT_NUMBERS = UNICODE_DIGITS + ["nan", "NaN", "inf", "-inf", "1e400", "1e-05", "-1", "1_0", "+3", "0x10",
                                "9" * 19, "9" * 40, "9" * 5000]
OTHER_VALUES = ["", " ", "0", "1", "0.5", "1.5", "999999999999", "\u00e9", "\x00", "largest", "toon"]
RAW_BYTES = [b"\xff\xfe", b"\xb2", b"\xb9", b"\xc3\x28", b"\xd9\xa1"]  # latin-1 digits, broken UTF-8, UTF-8 ١


class Target(NamedTuple):
    method: str
    path: str  # {job}: the fixture's job
    where: str  # query, form or header
    name: str
    numeric: bool = False  # only ASCII digits are numbers here


TARGETS = [Target("POST", "/toonify", "form", name, name in ("face", "steps", "seed", "strength"))
           for name in ("face", "steps", "seed", "strength", "output", "format", "method", "webhook",
                        "webhook_events_filter")] + [
    Target("POST", "/toonify", "query", "async"),
    Target("POST", "/toonify", "header", "Idempotency-Key"),
    Target("POST", "/toonify", "header", "Prefer"),
    Target("POST", "/toonify", "header", "Accept"),
    Target("POST", "/toonify", "header", "Last-Event-ID", True),
    Target("POST", "/faces", "header", "Accept"),
    Target("GET", "/jobs", "query", "limit", True),
    Target("GET", "/jobs", "query", "before", True),
    Target("GET", "/jobs/{job}", "header", "Accept"),
    Target("GET", "/jobs/{job}/events", "header", "Last-Event-ID", True),
    Target("GET", "/jobs/{job}/result", "query", "face", True),
    Target("GET", "/jobs/{job}/result", "query", "kind"),
    Target("GET", "/jobs/{job}/result", "query", "format"),
    Target("GET", "/jobs/{job}/result", "query", "strength", True),
    Target("POST", "/jobs/{job}/render", "query", "strength", True),
    Target("POST", "/jobs/{job}/render", "query", "face", True),
    Target("POST", "/jobs/{job}/render", "query", "format"),
    Target("GET", "/jobs/{job}/archive", "query", "strength", True),
    Target("GET", "/jobs/{job}/archive", "query", "style"),
    Target("GET", "/jobs/{job}/archive", "query", "format"),
]


class Case(NamedTuple):
    target: Target
    values: List[bytes]  # more than one: the parameter repeated

    @property
    def refused_as_number(self) -> bool:
        return self.target.numeric and any(v.decode("utf-8", "replace") in NOT_NUMBERS for v in self.values)


def _sendable_header(value: bytes) -> bool:
    """What HTTP lets a header value be at all (no NUL, no edge whitespace): the client refuses to send the rest."""
    return value == value.strip() and b"\x00" not in value


def grid() -> List[Case]:
    texts = [v.encode("utf-8") for v in NOT_NUMBERS + OTHER_VALUES] + RAW_BYTES
    cases = [Case(target, [value]) for target in TARGETS for value in texts
             if target.where != "header" or _sendable_header(value)]
    cases += [Case(target, [value, value]) for target in TARGETS for value in (b"1", b"\xd9\xa1")]
    return cases + [Case(target, [b"1", b"2"]) for target in TARGETS]


def _request(client: httpx.Client, case: Case, job: str) -> httpx.Response:
    target, path = case.target, case.target.path.replace("{job}", job)
    query, form, headers = [], [], {}
    if target.where == "query":
        query = [target.name.encode() + b"=" + quote_from_bytes(v).encode() for v in case.values]
    elif target.where == "form":
        form = [(target.name, v) for v in case.values]
    else:
        headers = [(target.name.encode(), v) for v in case.values]
        if target.name == "Last-Event-ID" and target.method == "POST":
            headers.append((b"Accept", b"text/event-stream"))
    if target.path == "/jobs/{job}/render" and target.name != "strength":
        query.append(b"strength=0.5")
    if query:
        path += "?" + b"&".join(query).decode("ascii")
    files = None
    if target.method == "POST" and not target.path.startswith("/jobs/"):
        files = [("image", ("cat.png", CAT, "image/png"))] + [(name, (None, value)) for name, value in form]
    return client.request(target.method, path, files=files, headers=headers)  # a finished job's stream ends


CAT = (PHOTOS / "chelsea.png").read_bytes()  # no face: options that pass end in 422 no_face, never in a job


def _check_grid(url: str, job: str, log_text, engine: str, store: str) -> None:
    cases, log_before = grid(), len(log_text())
    failures: List[str] = []
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer " + KEY}) as client:
        for case in cases:
            response = _request(client, case, job)
            status, body = response.status_code, response.content
            problem: Optional[str] = None
            if status >= 500:
                problem = "5xx"
            elif case.refused_as_number:  # 422 invalid_option, or 400 malformed_form for a 5,000-digit field
                error = response.json() if status in (400, 422) else {}
                if case.target.name.lower() not in error.get("message", "").lower():
                    problem = "not refused as a number (400/422 naming the field)"
            if problem:
                failures.append("%s %s %s=%r → %d %s: %s" % (case.target.method, case.target.path, case.target.name,
                                                            [v[:40] for v in case.values], status, body[:160], problem))
    log = log_text()[log_before:]
    print("%d cases (%d targets) on %s, %s store: %d failures" % (len(cases), len(TARGETS), engine, store,
                                                                 len(failures)))
    assert not failures, "\n".join(failures[:40])
    assert "Traceback" not in log, log[log.index("Traceback") - 400:][:4000]


PHOTO = {"image": ("o.jpg", (PHOTOS / "obama.jpg").read_bytes(), "image/jpeg")}


def test_grid_never_answers_5xx_local(engine, tiny_models, tmp_path):
    """The grid aims at a job that succeeded: results, re-renders and event streams all answer."""
    srv = Server(engine, tiny_models, tmp_path / "data", tmp_path / "cache", api_keys=KEY).start()
    try:
        with srv.client(headers={"Authorization": "Bearer " + KEY}) as client:
            job = client.post("/toonify?async=1", files=PHOTO, data={"steps": "2"}).json()["id"]
            assert wait_for(client, job)["status"] == "succeeded"
        _check_grid(srv.url, job, srv.log.read_text, engine, "sqlite")
    finally:
        srv.stop()


def test_grid_never_answers_5xx_redis(engine, tiny_models, tmp_path):
    """No worker runs: the job the grid aims at is cancelled while queued (the routes parse the same)."""
    cluster = Cluster(engine, tiny_models, tmp_path, tmp_path / "cache", api_keys=KEY)
    try:
        with cluster.api.client(headers={"Authorization": "Bearer " + KEY}) as client:
            job = client.post("/toonify?async=1", files=PHOTO, data={"steps": "2"}).json()["id"]
            client.delete("/jobs/%s" % job)
            wait_for(client, job, statuses=("cancelled",))
        _check_grid(cluster.api.url, job, cluster.api.log.read_text, engine, "redis")
    finally:
        cluster.close()
