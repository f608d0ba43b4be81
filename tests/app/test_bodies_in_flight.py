"""Request bodies held at once are bounded (TOONIFY_MAX_BODY_BYTES_IN_FLIGHT), over a real uvicorn: with two
uploads' bodies held, a third is answered 503 server_busy with Retry-After from its declared length (a chunked
one as it arrives); the two held ones complete as if nothing happened, and the refused one, sent again, is taken.
Refusals a page on another origin must read (413, 429, this 503) carry Access-Control-Allow-Origin."""
from __future__ import annotations

import io
import json
import re
import socket
import time
from typing import Iterator, List, Tuple

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.hostile import multipart_body
from tests.app.server import Server
from tests.conftest import PHOTOS

PAGE = "https://page.example"
MAX_UPLOAD = 4_000_000  # a body may be 5 MB (the form's 1 MB on top)
IN_FLIGHT = 7_000_000  # two ~3 MB bodies fit, a third does not
NEVER_ENDING = {"steps": "2000"}  # accepted jobs stay queued while the test looks
FIRST_PIECE = 64 * 1024  # of a held body: the server reads its headers and starts on the body


def _photo() -> bytes:
    """A real face as a ~3 MB PNG (noise keeps it from compressing)."""
    pixels = np.asarray(Image.open(str(PHOTOS / "obama.jpg")).convert("RGB").resize((1100, 1375))).astype(int)
    noisy = pixels + np.random.RandomState(0).randint(-8, 9, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


class HeldUpload:
    """A POST /toonify?async=1 over a raw socket whose headers and first bytes are sent; the rest waits."""

    def __init__(self, port: int, body: bytes, content_type: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        head = ("POST /toonify?async=1 HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (content_type, len(body))).encode()
        self.sock.sendall(head + body[:FIRST_PIECE])
        self.rest = body[FIRST_PIECE:]

    def finish(self) -> Tuple[int, bytes]:
        """Send the rest; the status and body of the answer."""
        self.sock.sendall(self.rest)
        reply = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        self.sock.close()
        head, _, body = reply.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), body


def _bytes_in_flight(client: httpx.Client) -> float:
    found = re.search(r"^toonify_body_bytes_in_flight (\S+)$", client.get("/metrics").text, re.M)
    assert found, "/metrics has no toonify_body_bytes_in_flight"
    return float(found.group(1))


def _wait_for_bytes_in_flight(client: httpx.Client, at_least: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _bytes_in_flight(client) < at_least:
        assert time.monotonic() < deadline, "the held bodies were never charged"
        time.sleep(0.05)


def _pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 256 * 1024):
        yield body[start: start + 256 * 1024]


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("in-flight")
    srv = Server(engine, tiny_models, root / "data", root / "cache", max_upload_bytes=MAX_UPLOAD,
                 max_body_bytes_in_flight=IN_FLIGHT, max_queue=3, cors_origins=PAGE).start()
    yield srv
    srv.stop()


def _delete_all(client: httpx.Client, job_ids: List[str]) -> None:
    for job_id in job_ids:
        client.delete("/jobs/%s" % job_id)


def test_bodies_past_the_bound_wait_outside_with_a_503_and_nothing_is_lost(server):
    photo = _photo()
    body, content_type = multipart_body(NEVER_ENDING, photo)
    assert IN_FLIGHT / 3 < len(body) <= IN_FLIGHT / 2  # two fit, three do not
    with server.client() as client:
        held = [HeldUpload(server.port, body, content_type) for _ in range(2)]
        _wait_for_bytes_in_flight(client, 2 * len(body))
        refused = client.post("/toonify?async=1", content=body,
                              headers={"Content-Type": content_type, "Origin": PAGE})
        chunked = client.post("/toonify?async=1", content=_pieces(body), headers={"Content-Type": content_type})
        answers = [upload.finish() for upload in held]
        assert [status for status, _ in answers] == [202, 202], answers
        retried = client.post("/toonify?async=1", content=body, headers={"Content-Type": content_type})
        assert _bytes_in_flight(client) == 0  # every body given back, the refused ones included
        jobs = [json.loads(answer)["id"] for _, answer in answers]  # ids are URL-safe base64: '-' and '_' too
        _delete_all(client, jobs + [retried.json().get("id", "")])
        limits = client.get("/config").json()["limits"]
    for answer in (refused, chunked):
        assert answer.status_code == 503 and answer.json()["code"] == "server_busy", answer.text
        assert int(answer.headers["Retry-After"]) >= 1 and "again" in answer.json()["message"]
    assert refused.headers["access-control-allow-origin"] == PAGE
    assert retried.status_code == 202, retried.text
    assert limits["max_body_bytes_in_flight"] == IN_FLIGHT


def test_a_create_that_goes_on_waiting_gives_its_body_back_once_its_job_exists(server):
    """Waiting for the result, or streaming the job's events as here, takes minutes: the upload's bytes must
    not stay charged meanwhile."""
    photo = {"image": ("o.jpg", (PHOTOS / "obama.jpg").read_bytes())}
    with server.client() as client:
        with client.stream("POST", "/toonify", files=photo, data=dict(NEVER_ENDING, seed="77"),
                           headers={"Accept": "text/event-stream"}) as events:
            held_while_streaming = _bytes_in_flight(client)
            client.delete("/jobs/%s" % events.headers["x-toonify-job"])
    assert events.status_code == 200 and held_while_streaming == 0


def test_413_and_429_carry_cors_headers(server):
    """A page must read why its upload was refused: too large, or the queue full."""
    origin = {"Origin": PAGE}
    photo = (PHOTOS / "obama.jpg").read_bytes()
    with server.client() as client:
        too_large = client.post("/toonify", files={"image": ("big.jpg", b"\xff" * (MAX_UPLOAD + 1_500_000))},
                                headers=origin)
        accepted, answer = [], None
        for seed in range(4):  # the queue takes 3: the 4th at the latest is refused
            answer = client.post("/toonify?async=1", files={"image": ("o.jpg", photo)},
                                 data=dict(NEVER_ENDING, seed=str(seed)), headers=origin)
            if answer.status_code != 202:
                break
            accepted.append(answer.json()["id"])
        _delete_all(client, accepted)
    assert too_large.status_code == 413 and too_large.headers["access-control-allow-origin"] == PAGE
    assert answer is not None and answer.status_code == 429, answer.text
    assert answer.headers["access-control-allow-origin"] == PAGE and int(answer.headers["Retry-After"]) >= 1
