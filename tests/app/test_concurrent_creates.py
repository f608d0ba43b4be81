"""Concurrent creates that ask for the same thing make one job, in both stores: the claim of an
Idempotency-Key or of a cache key (owner + photo + projection options) and the job's create are one atomic step.
Over a real uvicorn (SQLite with its in-process worker; Redis with a real redis-server and no worker, so that
every job stays queued), and on the stores themselves, counting the jobs each store holds."""
from __future__ import annotations

import io
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List, Optional

import httpx
import pytest
from PIL import Image

from app.errors import IdempotencyConflict
from app.jobs.job import IdempotencyKey, NewJob
from app.options import ToonifyOptions
from tests.app.scale import Cluster
from tests.app.server import Server
from tests.conftest import PHOTOS

CONCURRENT = 10
NEVER_ENDING = "2000"  # projection steps (the most allowed): every job is still live when the test counts
PHOTO = (PHOTOS / "obama.jpg").read_bytes()


class Deployment:
    """A running API and a count of the jobs its store holds (reservations are not jobs)."""

    def __init__(self, port: int, count_jobs: Callable[[], int], close: Callable[[], None]) -> None:
        self.port, self.count_jobs, self.close = port, count_jobs, close

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="http://127.0.0.1:%d" % self.port, timeout=120)


def _sqlite_jobs(data: Path) -> int:
    with sqlite3.connect(str(data / "jobs.sqlite3")) as db:
        return db.execute("SELECT COUNT(*) FROM jobs WHERE status != 'reserved'").fetchone()[0]


def _redis_jobs(cluster: Cluster) -> int:
    return sum(1 for key in cluster.redis.client().scan_iter(match="toonify:job:*", count=1000)
               if not key.endswith(b":files"))


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def deployment(request, engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("creates-" + request.param)
    if request.param == "sqlite":
        server = Server(engine, tiny_models, root / "data", root / "cache", max_queue=64).start()
        yield Deployment(server.port, lambda: _sqlite_jobs(root / "data"), server.stop)
        server.stop()
    else:
        cluster = Cluster(engine, tiny_models, root, root / "cache", max_queue=64)
        yield Deployment(cluster.api.port, lambda: _redis_jobs(cluster), cluster.close)
        cluster.close()


def _create(deployment: Deployment, photo: bytes, seed: int, key: Optional[str] = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    with deployment.client() as client:
        return client.post("/toonify?async=1", files={"image": ("p.jpg", photo, "image/jpeg")},
                           data={"steps": NEVER_ENDING, "seed": str(seed)}, headers=headers)


def _all_at_once(creates: List[Callable[[], httpx.Response]]) -> List[httpx.Response]:
    """Every create starts at the same moment (a barrier), each on its own connection."""
    start = threading.Barrier(len(creates))

    def run(create: Callable[[], httpx.Response]) -> httpx.Response:
        start.wait()
        return create()

    with ThreadPoolExecutor(len(creates)) as pool:
        return list(pool.map(run, creates))


def _variant(number: int) -> bytes:
    """The same portrait with one pixel changed: another photo (other bytes), still one face."""
    image = Image.open(io.BytesIO(PHOTO)).convert("RGB")
    image.putpixel((0, 0), (number * 40, 0, 0))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_concurrent_duplicates_with_a_key_make_one_job(deployment):
    before, key = deployment.count_jobs(), uuid.uuid4().hex
    responses = _all_at_once([lambda: _create(deployment, PHOTO, 101, key)] * CONCURRENT)
    assert [r.status_code for r in responses] == [202] * CONCURRENT, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert deployment.count_jobs() - before == 1


def test_concurrent_conflicting_bodies_with_one_key_the_first_wins_the_rest_get_422(deployment):
    before, key = deployment.count_jobs(), uuid.uuid4().hex
    photos = [_variant(number) for number in range(5)]
    assert len(set(photos)) == 5
    responses = _all_at_once([lambda photo=photo: _create(deployment, photo, 102, key) for photo in photos])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 422, 422, 422, 422], [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 422):
        assert refused.json()["code"] == "idempotency_conflict" and key in refused.json()["message"]
    assert deployment.count_jobs() - before == 1
    (accepted,) = [r for r in responses if r.status_code == 202]
    with deployment.client() as client:
        assert client.get("/jobs/%s" % accepted.json()["id"]).status_code == 200


def test_the_key_of_a_deleted_job_is_free_again_and_hides_no_job(deployment):
    key = uuid.uuid4().hex
    first = _create(deployment, PHOTO, 103, key).json()["id"]
    with deployment.client() as client:
        assert client.delete("/jobs/%s" % first).json()["status"] == "cancelled"  # a live job is cancelled …
        assert client.delete("/jobs/%s" % first).json()["deleted"] is True  # … a finished one deleted
        assert client.get("/jobs/%s" % first).status_code == 404
        before = deployment.count_jobs()
        retried = _create(deployment, PHOTO, 103, key)
        assert retried.status_code == 202, retried.text
        assert retried.json()["id"] != first and client.get("/jobs/%s" % retried.json()["id"]).status_code == 200
        assert deployment.count_jobs() - before == 1  # the job the client was told of, and no other
        again = _create(deployment, PHOTO, 103, key)  # the key now names the new job
        assert again.json()["id"] == retried.json()["id"] and deployment.count_jobs() - before == 1


def test_concurrent_identical_creates_without_a_key_share_one_job(deployment):
    before = deployment.count_jobs()
    responses = _all_at_once([lambda: _create(deployment, PHOTO, 104)] * CONCURRENT)
    assert [r.status_code for r in responses] == [202] * CONCURRENT, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert deployment.count_jobs() - before == 1


# -- the stores themselves ----------------------------------------------------------------------------------------
def _reserve_and_create(store, cache_key: str, key: Optional[IdempotencyKey]):
    """What admission does: a reservation per create, given back when another job answers it."""
    job_id = uuid.uuid4().hex
    assert store.reserve(job_id, 100)
    try:
        job = store.create(job_id, NewJob("", ToonifyOptions(), cache_key, []), b"photo", key)
    except IdempotencyConflict as conflict:
        store.release(job_id)
        return conflict
    if job.id != job_id:
        store.release(job_id)
    return job.id


def _at_once(count: int, work: Callable[[int], object]) -> list:
    start = threading.Barrier(count)

    def run(number: int) -> object:
        start.wait()
        return work(number)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_store_concurrent_creates_with_one_cache_key_make_one_job(store):
    ids = _at_once(CONCURRENT, lambda _: _reserve_and_create(store, "same", None))
    assert len(set(ids)) == 1 and store.queue_depth() == 1
    assert store.find_reusable("same").id == ids[0]
    assert store.reserve("one-more", 2) and not store.reserve("over", 2)  # every other reservation was given back


def test_store_concurrent_creates_with_one_key_first_wins(store):
    outcomes = _at_once(5, lambda n: _reserve_and_create(store, "photo-%d" % n,
                                                         IdempotencyKey("owner", "k", "request-%d" % n)))
    ids = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert len(ids) == 1 and store.queue_depth() == 1
    assert sum(isinstance(outcome, IdempotencyConflict) for outcome in outcomes) == 4
    winner = outcomes.index(ids[0])
    assert store.find_reusable("other", IdempotencyKey("owner", "k", "request-%d" % winner)).id == ids[0]
    assert store.find_reusable("other", IdempotencyKey("someone else", "k", "x")) is None  # keys are per owner


def test_store_key_of_a_deleted_job_is_free_again(store):
    key = IdempotencyKey("owner", "k", "request")
    first = _reserve_and_create(store, "photo", key)
    store.cancel(first)
    assert store.find_reusable("photo", key).id == first  # the key names its job while the job exists
    store.delete(first)
    assert store.find_reusable("photo", key) is None
    second = _reserve_and_create(store, "photo", IdempotencyKey("owner", "k", "another request"))
    assert second != first and store.get(second).status == "queued"
