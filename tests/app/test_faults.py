"""Faults no attacker is needed for: a job that raises, a dead worker thread, a full disk, SIGTERM mid-job,
a client that leaves, models that cannot load. Real servers, a real filesystem that fills up."""
from __future__ import annotations

import signal
import sqlite3
import threading
import time

import httpx
import pytest

from app.config import Settings
from app.jobs.job import NewJob
from app.jobs.local import LocalWorker
from app.jobs.sqlite_store import SqliteJobStore
from app.jobs.supervisor import WorkerSupervisor
from app.metrics import Metrics
from app.options import ToonifyOptions
from app.storage import StorageFull
from app.toonify import Toonify
from tests.app.disk import SmallDisk, can_mount
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

needs_root = pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root (and CAP_SYS_ADMIN)")


def _photo(name: str):
    return {"image": (name, (PHOTOS / name).read_bytes(), "image/png")}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wstats-cache")


@pytest.fixture()
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "disk", size_mb=24)
    yield disk
    disk.unmount()


def test_a_job_that_raises_fails_alone_and_the_next_job_runs(engine, tiny_models, tmp_path, cache_dir):
    data = tmp_path / "data"
    store = SqliteJobStore(data)  # a job the runner cannot even read (options from a future or broken version)
    store.create("broken-job", NewJob("", ToonifyOptions(), "key", []), (PHOTOS / "obama.jpg").read_bytes())
    db = sqlite3.connect(str(data / "jobs.sqlite3"))
    db.execute("UPDATE jobs SET options = '{\"steps\": \"many\", \"colour\": \"blue\"}' WHERE id = 'broken-job'")
    db.commit()
    db.close()
    assert store.get("broken-job").unreadable is not None
    server = Server(engine, tiny_models, data, cache_dir).start()
    try:
        with server.client() as client:
            response = client.post("/toonify", files=_photo("astronaut.png"), data={"steps": "3"})
            assert response.status_code == 200
            broken = client.get("/jobs/broken-job").json()
            assert broken["status"] == "failed" and broken["error"]["code"] == "internal_error"
            assert client.get("/readyz").status_code == 200
        assert server.log.read_text().count("job broken-job:") == 1  # logged once, with its id
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_thread_is_restarted_and_its_job_requeued(tmp_path):
    store = SqliteJobStore(tmp_path)
    store.create("job-a", NewJob("", ToonifyOptions(), "key", []), b"photo")
    deaths = []

    class DyingToonify(Toonify):
        @property
        def ready(self) -> bool:
            if not deaths:  # the first look at the models ends the thread: not an Exception, nothing catches it
                deaths.append(store.claim_next("w"))
                raise SystemExit("worker thread ended")
            return False  # then: no models, the worker idles

    toonify = DyingToonify(Settings(models_dir=tmp_path))

    def make_worker() -> LocalWorker:
        return LocalWorker(store, toonify, Metrics())

    supervisor = WorkerSupervisor(make_worker, lambda: store.requeue_interrupted(3), check_every_s=0.1)
    supervisor.start()
    try:
        deadline = time.monotonic() + 10
        while supervisor.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert supervisor.restarts == 1 and supervisor.alive() == (True, "")
        assert "stopped" in supervisor.last_death
        assert store.get("job-a").status == "queued"  # the dead worker's job waits for the new one
    finally:
        assert supervisor.stop(5)


@needs_root
def test_create_on_a_full_disk_leaves_nothing_behind_and_deletes_are_still_recorded(small_disk):
    store = SqliteJobStore(small_disk.path / "data")
    for name in ("done", "queued"):  # distinct requests: an identical one shares the job
        store.create(name, NewJob("", ToonifyOptions(), "key-" + name, []), b"x" * 100_000)
    store.claim_next("w")
    store.finish("done", "succeeded")
    small_disk.fill()
    with pytest.raises(StorageFull):
        store.create("new", NewJob("", ToonifyOptions(), "key-new", []), b"y" * 500_000)
    assert sorted(p.name for p in store.jobs_dir.iterdir()) == ["done", "queued"]  # no orphan, no half photo
    store.delete("done")
    assert store.cancel("queued").status == "cancelled"
    assert store.get("done") is None
    small_disk.free()
    assert store.space_reserve.ensure()
    assert store.create("new", NewJob("", ToonifyOptions(), "key-new", []), b"y" * 500_000).status == "queued"


@needs_root
def test_disk_filling_under_a_running_service(engine, tiny_models, small_disk, cache_dir):
    floor = 4_000_000
    server = Server(engine, tiny_models, small_disk.path / "data", cache_dir, min_free_bytes=floor).start()
    try:
        with server.client() as client:
            done = client.post("/toonify?async=1", files=_photo("astronaut.png"), data={"steps": "3"}).json()
            wait_for(client, done["id"])
            running = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "40"}).json()
            wait_for(client, running["id"], until=lambda job: job["step"] >= 2)

            small_disk.fill(leave_bytes=floor // 2)  # below the floor: new jobs refused, admitted ones go on
            refused = client.post("/toonify", files=_photo("two-faces.jpg"), data={"steps": "3"})
            assert refused.status_code == 507 and refused.json()["code"] == "storage_full"
            assert int(refused.headers["retry-after"]) > 0 and "disk" in refused.json()["message"]
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "disk" in ready.json()["reason"]

            small_disk.fill()  # completely full: the running job cannot record progress; it waits in the queue
            wait_for(client, running["id"], ("queued",), timeout_s=60)
            deleted = client.delete("/jobs/%s" % done["id"])
            assert deleted.status_code == 200 and client.get("/jobs/%s" % done["id"]).status_code == 404

            small_disk.free()  # space returns: the service resumes by itself
            job = wait_for(client, running["id"], timeout_s=600)
            assert job["status"] == "succeeded" and job["attempts"] == 1
            assert client.get("/readyz").status_code == 200
            assert client.post("/toonify", files=_photo("two-faces.jpg"), data={"steps": "3"}).status_code == 200
        assert "the job worker stopped" not in server.log.read_text()
        assert not [p for p in (small_disk.path / "data" / "jobs").iterdir() if p.name.endswith(".partial")]
    finally:
        server.stop()


def test_sigterm_mid_job_exits_in_time_and_the_job_runs_after_restart(engine, tiny_models, tmp_path, cache_dir):
    data, grace_s = tmp_path / "data", 10
    server = Server(engine, tiny_models, data, cache_dir, shutdown_timeout_s=grace_s).start()
    with server.client() as client:
        # the longest job the server takes: still running when the signal comes, however fast the machine
        job_id = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "2000"}).json()["id"]
        wait_for(client, job_id, until=lambda job: job["step"] >= 2)
    waiting = {}

    def sync_request() -> None:  # a client waiting for its picture when the server is told to stop
        with server.client() as client:
            waiting["response"] = client.post("/toonify", files=_photo("obama.jpg"), data={"steps": "2000"})

    waiter = threading.Thread(target=sync_request)
    waiter.start()
    time.sleep(1.0)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=grace_s + 15)
    assert time.monotonic() - started < grace_s
    waiter.join(5)
    assert waiting["response"].status_code == 503 and waiting["response"].json()["code"] == "shutting_down"
    assert waiting["response"].headers["location"] == "/jobs/%s" % job_id  # the same photo and options: one job
    with sqlite3.connect(str(data / "jobs.sqlite3")) as db:
        assert db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] == "queued"
    restarted = Server(engine, tiny_models, data, cache_dir).start()
    try:
        with restarted.client() as client:
            # taken up again from the queue: the stop did not use up an attempt
            job = wait_for(client, job_id, timeout_s=120, until=lambda job: job["step"] >= 1)
            assert job["status"] == "running" and job["attempts"] == 1
    finally:
        restarted.stop()


def test_an_abandoned_sync_request_cancels_its_job_when_configured(engine, tiny_models, tmp_path, cache_dir):
    data = tmp_path / "data"
    server = Server(engine, tiny_models, data, cache_dir, cancel_abandoned=1).start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            with server.client(timeout=3) as client:
                client.post("/toonify", files=_photo("obama.jpg"), data={"steps": "2000"})
        deadline, status = time.monotonic() + 10, None
        while time.monotonic() < deadline and status != "cancelled":
            with sqlite3.connect(str(data / "jobs.sqlite3")) as db:
                row = db.execute("SELECT status FROM jobs").fetchone()
            status = row[0] if row else None
            time.sleep(0.2)
        assert status == "cancelled"
    finally:
        server.stop()


def test_models_that_fail_to_load_answer_503_with_the_reason(engine, tmp_path, cache_dir):
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "stylegan2-ffhq-config-f.pkl").write_bytes(b"<html>not a model</html>")
    server = Server(engine, broken, tmp_path / "data", cache_dir).spawn().wait_until("/healthz")
    try:
        with server.client() as client:
            deadline = time.monotonic() + 60
            while "loading" in client.get("/readyz").json()["reason"] and time.monotonic() < deadline:
                time.sleep(0.2)
            response = client.post("/toonify", files=_photo("obama.jpg"))
            assert response.status_code == 503 and response.json()["code"] == "models_failed"
            assert "still loading" not in response.json()["message"] and "restart" in response.json()["message"]
    finally:
        server.stop()

