"""Fixtures of the store tests: a real redis-server per test module, and each job store in turn."""
from __future__ import annotations

import pytest

from app.jobs.redis_store import RedisJobStore, connect
from app.jobs.sqlite_store import SqliteJobStore
from tests.app.scale import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """A SQLite store in a fresh folder, then a Redis store on an emptied redis-server."""
    if request.param == "sqlite":
        return SqliteJobStore(tmp_path)
    client = connect(request.getfixturevalue("redis_server").url)
    client.flushall()
    return RedisJobStore(client, result_ttl_s=600, job_timeout_s=60, job_attempts=3)
