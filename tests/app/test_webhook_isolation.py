"""Webhooks under hostile receivers (#25), over real uvicorn with tiny models and real loopback receivers: four
receivers that never answer and one that trickles its answer do not delay another job's ``completed`` call; the
trickling receiver's attempt is cut at 10 s in total; a create answered by an earlier job (a cache hit) with its
own webhook URL gets its own ``completed`` call, also when that job had already finished."""
from __future__ import annotations

import json
import select
import socket
import threading
import time
from typing import List, Optional, Tuple

import pytest

from tests.app.receiver import Receiver
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

SECRET = "webhook-secret-isolation"
FINISH_TO_CALL_S = 2.0  # the bound: a job's completed call after the job finished


def _photo(name: str = "astronaut.png"):
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hooks")
    srv = Server(engine, tiny_models, root / "data", root / "cache", webhook_secret=SECRET,
                 webhook_allow_private="1", webhook_attempts="1").start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(server):
    with server.client() as http:
        yield http


class Hostile:
    """A receiver that accepts connections and never answers (``trickle``: answers a status line, then one
    header byte every 0.2 s, forever). Records each connection's (accepted, closed by the sender) monotonic
    times, measured on this side."""

    def __init__(self, trickle: bool = False) -> None:
        self.trickle = trickle
        self.connections: List[Tuple[float, Optional[float]]] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = "http://127.0.0.1:%d/hook" % self.listener.getsockname()[1]
        self.closing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections.append((time.monotonic(), None))
                index = len(self.connections) - 1
            threading.Thread(target=self._hold, args=(conn, index), daemon=True).start()

    def _hold(self, conn: socket.socket, index: int) -> None:
        sent_status = False
        with conn:
            while not self.closing.is_set():
                readable, _, _ = select.select([conn], [], [], 0.2)
                if readable:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        data = b""
                    if not data:  # the sender gave up on us
                        with self.lock:
                            self.connections[index] = (self.connections[index][0], time.monotonic())
                        return
                elif self.trickle:
                    try:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: " if not sent_status else b"a")
                    except OSError:
                        pass
                    sent_status = True

    def open_count(self) -> int:
        with self.lock:
            return sum(1 for _, closed in self.connections if closed is None)

    def close(self) -> None:
        self.closing.set()
        self.listener.close()


def _until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not within %ss" % timeout_s
        time.sleep(0.05)


def test_slow_receivers_delay_no_other_job_and_a_trickle_is_cut_at_10_s(client):
    silent = [Hostile() for _ in range(4)]
    trickle = Hostile(trickle=True)
    good = Receiver()
    try:
        done = client.post("/toonify?async=1", files=_photo(), data={"steps": "2", "seed": "51"}).json()
        wait_for(client, done["id"])
        for bad in silent + [trickle]:  # cache hits of a finished job: each gets its completed call at once
            again = client.post("/toonify?async=1", files=_photo(), data={"steps": "2", "seed": "51",
                                                                           "webhook": bad.url})
            assert again.status_code == 200 and again.json()["id"] == done["id"]
        _until(lambda: all(bad.open_count() == 1 for bad in silent))  # four senders held, as four threads were
        job = client.post("/toonify?async=1", files=_photo(), data={
            "steps": "2", "seed": "52", "webhook": good.url, "webhook_events_filter": "completed"}).json()
        finished = wait_for(client, job["id"])
        call = good.wait(1, timeout_s=30)[0]
        payload = json.loads(call["body"])
        held = sum(bad.open_count() for bad in silent + [trickle])
        assert payload["event"] == "completed" and payload["job"]["id"] == job["id"]
        delay = call["wall"] - finished["finished_at"]
        assert delay < FINISH_TO_CALL_S, "the completed call came %.1f s after the job finished" % delay
        assert held == 5, "the hostile receivers were let go before the job finished: the test proves nothing"

        _until(lambda: trickle.open_count() == 0, timeout_s=40)
        accepted, closed = trickle.connections[0]
        assert closed is not None and 9.0 <= closed - accepted <= 20.0, closed and closed - accepted
        assert len(trickle.connections) == 1  # one attempt (TOONIFY_WEBHOOK_ATTEMPTS=1)
    finally:
        for receiver in silent + [trickle, good]:
            receiver.close()


def test_a_cache_hit_with_its_own_webhook_gets_completed(client):
    first, second, late = Receiver(), Receiver(), Receiver()
    try:
        options = {"steps": "6", "seed": "61", "webhook_events_filter": "completed"}
        job = client.post("/toonify?async=1", files=_photo(), data=dict(options, webhook=first.url)).json()
        hit = client.post("/toonify?async=1", files=_photo(), data=dict(options, webhook=second.url)).json()
        assert hit["id"] == job["id"]  # the same job answers both creates
        wait_for(client, job["id"])
        for receiver in (first, second):
            receiver.wait(1, timeout_s=30)
            payload = receiver.payloads()[0]
            assert payload["event"] == "completed" and payload["job"]["id"] == job["id"]

        after = client.post("/toonify?async=1", files=_photo(), data=dict(options, webhook=late.url))
        assert after.status_code == 200 and after.json()["id"] == job["id"]  # finished already: completed at once
        late.wait(1, timeout_s=30)
        payload = late.payloads()[0]
        assert payload["event"] == "completed" and payload["job"]["status"] == "succeeded"
        time.sleep(1.0)
        assert [len(r.calls) for r in (first, second, late)] == [1, 1, 1]  # each create its one call
    finally:
        for receiver in (first, second, late):
            receiver.close()
