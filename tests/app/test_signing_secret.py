"""The server's signing secret (#24.10): owner ids and link signatures are HMACs under it, so a link tells
nothing about a weak key; it is configured, or made once and kept (0600 file, or Redis SET NX) so that every
API process agrees."""
from __future__ import annotations

import hashlib
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.api.auth import Auth
from app.api.signing_secret import FILE_NAME, file_secret, redis_secret
from app.config import ConfigError, Settings
from app.errors import QueueUnavailable
from app.jobs.redis_store import connect
from tests.app.scale import Cluster, RedisServer
from tests.app.server import Server
from tests.conftest import PHOTOS

WEAK_KEY = "password"
PAGE = "https://page.example"
BEARER = {"type": "http", "path": "/jobs", "headers": [(b"authorization", b"Bearer " + WEAK_KEY.encode())]}


def test_the_owner_id_is_not_a_hash_of_the_key_alone(tmp_path):
    """The attack: hash a dictionary word the old way and compare it with the owner in a link."""
    owner = Auth(frozenset([WEAK_KEY]), lambda: file_secret(tmp_path)).owner(BEARER)
    assert owner != "k" + hashlib.sha256(WEAK_KEY.encode()).hexdigest()[:16]
    other = Auth(frozenset([WEAK_KEY]), lambda: b"\1" * 32).owner(BEARER)
    assert owner.startswith("k") and len(owner) == 17 and owner != other


def test_a_made_secret_is_private_kept_and_the_same_for_racing_processes(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: file_secret(tmp_path / "data"), range(32)))
    assert len(secrets) == 1 and len(secrets.pop()) == 32
    path = tmp_path / "data" / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [FILE_NAME]  # no drafts left behind
    assert file_secret(tmp_path / "data") == path.read_bytes()


def test_a_damaged_secret_file_is_a_clear_error(tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"short")
    with pytest.raises(ConfigError, match="delete it to make a new one"):
        file_secret(tmp_path)


def test_a_short_configured_secret_is_refused(monkeypatch):
    monkeypatch.setenv("TOONIFY_SECRET_KEY", "weak")
    with pytest.raises(ConfigError, match="TOONIFY_SECRET_KEY must be at least 32") as refused:
        Settings()
    assert "weak" not in str(refused.value)  # a secret, even a weak one, stays out of logs
    monkeypatch.setenv("TOONIFY_SECRET_KEY", "s" * 32)
    assert Settings().secret_key == "s" * 32


def test_redis_keeps_one_secret_for_every_api_process(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        first, second = connect(server.url), connect(server.url)
        assert redis_secret(first) == redis_secret(second) and len(redis_secret(first)) == 32
    finally:
        server.stop()
    with pytest.raises(QueueUnavailable):
        redis_secret(first)


def test_two_api_processes_of_a_redis_deployment_accept_each_others_links(engine, tiny_models, tmp_path):
    """Behind a balancer: different data folders, one Redis; a link and an owner id from one work on the other."""
    cluster = Cluster(engine, tiny_models, tmp_path, tmp_path / "cache", api_keys=WEAK_KEY, cors_origins=PAGE)
    other = Server(engine, tmp_path / "api-models", tmp_path / "data-2", tmp_path / "cache", queue="redis",
                   redis_url=cluster.redis.url, api_keys=WEAK_KEY).spawn().wait_until("/healthz")
    key = {"Authorization": "Bearer " + WEAK_KEY}
    try:
        with cluster.api.client() as first, other.client() as second:
            made = first.post("/toonify?async=1", headers=key, data={"steps": "3"},
                              files={"image": ("a.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")})
            assert made.status_code == 202, made.text
            job = second.get("/jobs/%s" % made.json()["id"], headers=key)
            assert job.status_code == 200, job.text  # the same owner id on both
            with second.stream("GET", made.json()["links"]["events"]) as events:
                assert events.status_code == 200  # signed by the first, accepted by the second
            altered = made.json()["links"]["events"].replace("sig=", "sig=A", 1)
            assert second.get(altered).status_code in (400, 403)
        assert WEAK_KEY not in cluster.redis.client().get("toonify:secret").decode("latin-1")
        cluster.redis.stop()
        with cluster.api.client() as first:  # Redis down: a 503 the page can read (#24.9)
            down = first.get("/jobs", headers=dict(key, Origin=PAGE))
        assert down.status_code == 503 and down.headers["access-control-allow-origin"] == PAGE, down.text
    finally:
        other.stop()
        cluster.close()
