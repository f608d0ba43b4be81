"""One change feed per store: event streams and waiting requests are told of a job's changes instead of each
polling the store, so 500 event streams and 50 waiting POSTs on one job cost the store the same reads as one
stream (counted in a real server by tests.app.counted_server), and /healthz stays as fast as without them. The
feeds themselves: SQLite hears changes made by another process; Redis hears every write path of another
connection (a worker's) through pub/sub on a real redis-server."""
from __future__ import annotations

import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Set, Tuple

import httpx
import pytest

from app.api.streams import SAFETY_S
from app.jobs.feed import EVERYTHING, Changed
from app.jobs.job import NewJob
from app.jobs.redis_store import RedisJobStore, connect
from app.jobs.sqlite_store import SqliteJobStore
from app.options import ToonifyOptions
from tests.app.latency import healthz_timings
from tests.app.scale import RedisServer
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS, REPO

STREAMS, WAITERS = 500, 50
WINDOW_S = 6.0  # reads are counted over this long
CHANGES_PER_S = 10
JITTER_S = 0.002  # a shared 2-core machine's scheduling noise on a sub-millisecond request


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("change-feed")
    srv = Server(engine, tiny_models, root / "data", root / "cache", max_streams=STREAMS + 10)
    srv.entry = "tests.app.counted_server"
    srv.reads, srv.data = root / "reads.txt", root / "data"
    srv.env["COUNTED_READS_FILE"] = str(srv.reads)
    srv.start()
    yield srv
    srv.stop()


class Counted(NamedTuple):
    reads: int  # of the job store (its get), by the server
    changes: int  # the calls of its write paths, by the server and by the test's Changer

    @property
    def per_s(self) -> float:
        return self.reads / WINDOW_S


class Changer:
    """Another process's writes to the running job, CHANGES_PER_S of them (the job's own steps come at the pace
    of a busy machine: some windows have none): what the server hears through its feed's shared query."""

    def __init__(self, data: Path, job_id: str) -> None:
        self.store, self.job_id = SqliteJobStore(data), job_id
        self.count = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1 / CHANGES_PER_S):
            self.store.progress(self.job_id, "projecting", self.count % 2000, 2000)
            self.count += 1

    def close(self) -> None:
        self.stop.set()
        self._thread.join()
        self.store.changes.close()


def _server_counts(server: Server) -> Tuple[int, int]:
    """The server's (reads, changes) so far, every call it answered before this one included: waits for counts
    taken after now, however late a busy machine runs the server's writer thread."""
    now = time.time()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reads, changes, taken_at = server.reads.read_text().split()
        if float(taken_at) > now:
            return int(reads), int(changes)
        time.sleep(0.01)
    raise AssertionError("the server wrote no counts for 60 s")


def _counted(server: Server, changer: Optional[Changer] = None) -> Counted:
    """The job reads and changes of the store over WINDOW_S."""
    (reads, changes), changed = _server_counts(server), changer.count if changer else 0
    time.sleep(WINDOW_S)
    (last_reads, last_changes), changed = _server_counts(server), (changer.count if changer else 0) - changed
    return Counted(last_reads - reads, last_changes - changes + changed)


def _healthz_median(server: Server) -> float:
    return statistics.median(healthz_timings(server.port, count=60))


class Clients:
    """Raw sockets, each with one request sent, all drained by one thread (a client that reads its events)."""

    def __init__(self) -> None:
        self.sockets: List[socket.socket] = []
        self.selector = selectors.DefaultSelector()
        self.heads: Set[socket.socket] = set()  # those whose response headers arrived
        self.closed = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def send(self, port: int, request: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(request)
        sock.setblocking(False)
        self.sockets.append(sock)
        self.selector.register(sock, selectors.EVENT_READ)

    def _drain(self) -> None:
        while not self.closed:
            for key, _ in self.selector.select(timeout=0.2) if self.sockets else ():
                try:
                    data = key.fileobj.recv(65536)
                except OSError:  # BlockingIOError too: nothing after all
                    continue
                if data:
                    self.heads.add(key.fileobj)
                else:  # answered and closed
                    self.selector.unregister(key.fileobj)
            if not self.sockets:
                time.sleep(0.05)

    def close(self) -> None:
        self.closed = True
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def _waiting_post(server: Server, seed: str) -> bytes:
    """A synchronous POST /toonify (no async, no event stream: it waits for the image) of the running job."""
    request = httpx.Request("POST", server.url + "/toonify", files={
        "image": ("o.jpg", (PHOTOS / "obama.jpg").read_bytes())}, data={"steps": "2000", "seed": seed})
    body = request.read()
    head = "POST /toonify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        request.headers["content-type"], len(body))
    return head.encode() + body


def _cache_hits(client: httpx.Client) -> float:
    """Creates answered by an earlier job: a waiting POST that found the running job, and now waits for it."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("toonify_cache_hits_total "):
            return float(line.split()[1])
    raise AssertionError("no toonify_cache_hits_total in /metrics")


def test_watchers_cost_the_store_one_read_per_change_not_per_client(server):
    seed = "81"
    with server.client() as client:
        job_id = client.post("/toonify?async=1", files={"image": ("o.jpg", (PHOTOS / "obama.jpg").read_bytes())},
                             data={"steps": "2000", "seed": seed}).json()["id"]
        wait_for(client, job_id, until=lambda job: job["stage"] == "projecting")
    changer = Changer(server.data, job_id)
    alone = _counted(server, changer)  # nobody watches: nothing reads the job
    baseline = statistics.median(_healthz_median(server) for _ in range(3))
    events = ("GET /jobs/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
              % job_id).encode()
    one = Clients()
    many = Clients()
    try:
        one.send(server.port, events)
        single = _counted(server, changer)
        with server.client() as client:
            hits = _cache_hits(client)
            for _ in range(STREAMS):
                many.send(server.port, events)
            post = _waiting_post(server, seed)
            for _ in range(WAITERS):
                many.send(server.port, post)
            deadline = time.monotonic() + 120
            while (len(many.heads) < STREAMS or _cache_hits(client) < hits + WAITERS) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(many.heads) >= STREAMS and _cache_hits(client) >= hits + WAITERS
            loaded = _counted(server, changer)
            slowest = min(_healthz_median(server) for _ in range(3))
            assert client.get("/jobs/%s" % job_id).json()["status"] == "running"  # it changed all along
    finally:
        with server.client() as client:
            client.delete("/jobs/%s" % job_id)
        one.close()
        many.close()
        changer.close()
    print("store reads/s: %.1f alone, %.1f with one stream, %.1f with %d streams + %d waiting POSTs (job changes in "
          "%.0f s: %d, %d, %d); /healthz median %.2f ms, %.2f ms with them" % (
              alone.per_s, single.per_s, loaded.per_s, STREAMS, WAITERS, WINDOW_S, alone.changes, single.changes,
              loaded.changes, baseline * 1e3, slowest * 1e3))
    assert alone.reads == 0  # nobody watches, nobody reads
    # at most one read per change of the job (fewer when it changes faster than every GAP_S), however many
    # watch; plus the first stream's first read, a change made just before the window but read in it, and a
    # safety re-read whenever nothing changed for SAFETY_S
    allowance = 2 + WINDOW_S / SAFETY_S
    assert 1 <= single.reads <= single.changes + allowance, single
    assert loaded.reads <= loaded.changes + allowance, loaded
    assert loaded.per_s <= 1.5 * single.per_s + 1, (single, loaded)  # the same reads per second as one stream
    assert slowest <= 2 * baseline + JITTER_S, (baseline, slowest)

class Heard:
    """What a feed's listener was told, on the feed's thread."""

    def __init__(self) -> None:
        self.ids: Set[str] = set()
        self.everything = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, changed: Changed) -> None:
        with self.lock:
            if changed is EVERYTHING:
                self.everything.set()
            else:
                self.ids |= changed

    def wait_for(self, job_id: str, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if job_id in self.ids:
                    self.ids.discard(job_id)
                    return
            time.sleep(0.01)
        raise AssertionError("no change of %s was announced" % job_id)


def test_sqlite_feed_hears_this_process_at_once_and_another_within_a_moment(tmp_path):
    store = SqliteJobStore(tmp_path)
    heard = Heard()
    store.changes.listen(heard)
    try:
        store.create("mine", NewJob("", ToonifyOptions(), "k-mine", []), b"photo")
        heard.wait_for("mine", timeout_s=5)
        other = ("from pathlib import Path\nfrom app.jobs.job import NewJob\n"
                 "from app.jobs.sqlite_store import SqliteJobStore\nfrom app.options import ToonifyOptions\n"
                 "s = SqliteJobStore(Path(%r))\n"
                 "s.create('theirs', NewJob('', ToonifyOptions(), 'k', []), b'p')\n" % str(tmp_path))
        subprocess.run([sys.executable, "-c", other], cwd=str(REPO), check=True, timeout=60)
        heard.wait_for("theirs")
        store.cancel("mine")
        heard.wait_for("mine", timeout_s=5)
        store.delete("theirs")
        heard.wait_for("theirs", timeout_s=5)
    finally:
        store.changes.close()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("feed-redis")).start()
    yield srv
    srv.stop()


def test_redis_feed_hears_every_write_path_of_another_connection(redis_server):
    api = RedisJobStore(connect(redis_server.url, timeout_s=5), result_ttl_s=600, job_timeout_s=60, job_attempts=3)
    worker = RedisJobStore(connect(redis_server.url), result_ttl_s=600, job_timeout_s=60, job_attempts=3)
    api.redis.flushall()
    heard = Heard()
    api.changes.listen(heard)
    try:
        assert heard.everything.wait(10)  # subscribed: from here on, nothing is missed
        steps = [lambda: worker.create("r1", NewJob("", ToonifyOptions(), "k-r1", []), b"photo"),
                 lambda: worker.claim("r1", "w1"),
                 lambda: worker.progress("r1", "projecting", 2, 10),
                 lambda: worker.publish_preview("r1", {"step": 2}, {"preview_0.jpg": b"jpeg"}),
                 lambda: worker.requeue("r1"),
                 lambda: worker.claim("r1", "w1"),
                 lambda: worker.finish("r1", "succeeded"),
                 lambda: worker.create("r2", NewJob("", ToonifyOptions(), "k-r2", []), b"photo"),
                 lambda: worker.cancel("r2"),
                 lambda: worker.delete("r1")]
        for step in steps:
            step()
            heard.wait_for("r2" if step in steps[7:9] else "r1", timeout_s=5)
        worker.progress("r1", "projecting", 3, 10)  # a deleted job does not change: nothing is announced
        time.sleep(0.5)
        assert not heard.ids
    finally:
        api.changes.close()
