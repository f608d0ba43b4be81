"""Issue 27 item 2 over real uvicorn with tiny models: ``GET /jobs`` on a server without API keys (every job is
the caller's), newest first, paginated; a wrong API key and a missing one told apart; the page's icon and
example photos served (also to callers without a key); the job index (SQLite and a real Redis) drops entries
long past the result TTL instead of growing with every job ever made."""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from app.api.jobindex import RedisJobIndex, SqliteJobIndex
from app.api.page import EXAMPLES
from app.jobs.redis_store import connect
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS, REPO

KEY = "history-key-1"


def _photo(name: str = "astronaut.png"):
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


@pytest.fixture(scope="module")
def open_server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("history-open")
    srv = Server(engine, tiny_models, root / "data", root / "cache").start()
    with srv.client() as client:
        yield client
    srv.stop()


@pytest.fixture(scope="module")
def keyed_server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("history-keyed")
    srv = Server(engine, tiny_models, root / "data", root / "cache", api_keys=KEY).start()
    with srv.client() as client:
        yield client
    srv.stop()


def test_without_api_keys_every_job_is_listed_newest_first_with_pagination(open_server):
    assert open_server.get("/jobs").json() == {"jobs": [], "next": None}
    made = [open_server.post("/toonify?async=1", files=_photo(), data={"steps": "2", "seed": str(seed)}).json()["id"]
            for seed in range(5)]
    first = open_server.get("/jobs?limit=2")
    assert first.status_code == 200, first.text
    page = first.json()
    assert [job["id"] for job in page["jobs"]] == made[::-1][:2] and page["next"]
    seen = [job["id"] for job in page["jobs"]]
    while page["next"]:
        page = open_server.get(page["next"]).json()
        seen += [job["id"] for job in page["jobs"]]
    assert seen == made[::-1]  # every job once, newest first, across pages
    for job_id in made:
        wait_for(open_server, job_id)
    again = open_server.post("/toonify?async=1", files=_photo(), data={"steps": "2", "seed": "0"}).json()
    assert again["id"] == made[0]  # a cache hit is the earlier job, listed once
    listed = open_server.get("/jobs?limit=100").json()["jobs"]
    assert [job["id"] for job in listed] == made[::-1] and all(job["status"] == "succeeded" for job in listed)
    assert listed[0]["links"]["results"][0]["toon"].startswith("/jobs/%s/result" % made[-1])
    open_server.delete("/jobs/%s" % made[2])  # a deleted job leaves the list
    assert made[2] not in [job["id"] for job in open_server.get("/jobs").json()["jobs"]]
    assert open_server.get("/jobs?limit=0").status_code == 422


def test_a_missing_key_and_a_wrong_key_get_different_answers(keyed_server):
    missing = keyed_server.get("/jobs")
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    assert "send 'Authorization: Bearer <key>'" in missing.json()["message"]
    assert missing.headers["www-authenticate"] == "Bearer"
    for wrong in ("Bearer not-the-key", "Bearer " + KEY + "x", "bearer " + KEY.upper()):
        refused = keyed_server.get("/jobs", headers={"Authorization": wrong})
        assert refused.status_code == 401 and refused.json()["code"] == "key_not_accepted", wrong
        assert "this key is not accepted" in refused.json()["message"]
        assert refused.headers["www-authenticate"] == "Bearer"
        assert KEY not in refused.text
    basic = keyed_server.get("/jobs", headers={"Authorization": "Basic dXNlcjpwYXNz"})  # no bearer key sent
    assert basic.status_code == 401 and basic.json()["code"] == "unauthorized"
    posted = keyed_server.post("/toonify", files=_photo("chelsea.png"), headers={"Authorization": "Bearer nope"})
    assert posted.status_code == 401 and posted.json()["code"] == "key_not_accepted"
    allowed = keyed_server.get("/jobs", headers={"Authorization": "Bearer " + KEY})
    assert allowed.status_code == 200 and allowed.json()["jobs"] == []


@pytest.mark.parametrize("server_name", ["open_server", "keyed_server"])
def test_icon_and_example_photos_are_served_without_a_key(request, server_name):
    client = request.getfixturevalue(server_name)
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/vnd.microsoft.icon"
    assert icon.content[:4] == b"\0\0\1\0"  # an ICO header
    assert Image.open(io.BytesIO(icon.content)).size == (48, 48)
    assert sorted(EXAMPLES) == ["astronaut.jpg", "grace_hopper.jpg", "obama.jpg"]
    for name in EXAMPLES:
        photo = client.get("/examples/" + name)
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(photo.content)).width <= 512
    for other in ("README.md", "..%2F..%2Fpage.py", "nope.jpg"):
        assert client.get("/examples/" + other).status_code == 404


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_index_drops_entries_long_past_the_ttl(kind, request, tmp_path):
    ttl_s, now = 100, time.time()
    if kind == "sqlite":
        index = SqliteJobIndex(tmp_path, ttl_s)
    else:
        client = connect(request.getfixturevalue("redis_server").url)
        client.flushall()
        index = RedisJobIndex(client, ttl_s)
    index.add("", "ancient", now - 3 * ttl_s)  # e.g. recorded before the server was stopped for days
    index.add("k1", "other-owner", now - 3 * ttl_s)
    assert [job for job, _ in index.page("", float("inf"), 10)] == ["ancient"]
    index.add("", "recent", now - ttl_s)  # adding prunes this owner's entries older than twice the TTL
    index.add("", "new", now)
    assert [job for job, _ in index.page("", float("inf"), 10)] == ["new", "recent"]
    assert [job for job, _ in index.page("", now, 10)] == ["recent"]  # the cursor: strictly before
    assert [job for job, _ in index.page("k1", float("inf"), 10)] == ["other-owner"]  # another owner's: theirs


def test_the_images_carry_the_example_photos():
    """Without a Docker engine: both images copy app/ whole and .dockerignore keeps nothing of the page out."""
    for engine in ("tf1", "torch"):
        assert "\nCOPY app/ app/\n" in (REPO / "docker" / engine / "Dockerfile").read_text(), engine
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    assert not [rule for rule in ignored if rule.startswith(("app", "*.jpg", "**/*.jpg", "*.md", "**/static"))]
    assert sorted(p.name for p in (REPO / "app" / "api" / "static" / "examples").iterdir()) == \
        ["README.md", "astronaut.jpg", "grace_hopper.jpg", "obama.jpg"]
