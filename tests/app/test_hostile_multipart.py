"""Hostile request bodies and slow clients against a real uvicorn: every multipart attack is answered at once with
a clear 4xx while /healthz stays as fast as before them, the log does not grow with the attack, and connections
that dribble their headers or body are cut."""
from __future__ import annotations

import http.client
import socket
import threading
import time
from email import policy
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Callable, Dict, List, Tuple

import pytest

from app.api.multipart_guard import FormLimits, MalformedForm, boundary_of, parse_form
from tests.app.latency import assert_not_slower, healthz_timings
from tests.app.server import Server
from tests.conftest import PHOTOS

BOUNDARY = "x7Hq"
MB = 1024 * 1024


def _part(name: str, data: bytes, filename: str = None) -> bytes:
    disposition = 'form-data; name="%s"' % name + ('; filename="%s"' % filename if filename else "")
    head = b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: " + disposition.encode()
    return head + b"\r\n\r\n" + data + b"\r\n"


def _form(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


PHOTO_PART = _part("image", b"AAAA", "a.jpg")
ATTACKS: Dict[str, Callable[[], bytes]] = {
    "junk-after-closing-boundary-1MB": lambda: _form(PHOTO_PART) + b"A" * MB,
    "junk-after-closing-boundary-4MB": lambda: _form(PHOTO_PART) + b"A" * (4 * MB),
    "crlf-flood-before-first-boundary-20MB": lambda: b"\r\n" * (10 * MB) + _form(PHOTO_PART),
    "20MB-header-in-a-part": lambda: (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"image\""
                                      b"; filename=\"a\"\r\nX-Pad: " + b"a" * (20 * MB) + b"\r\n\r\nA\r\n--"
                                      + BOUNDARY.encode() + b"--\r\n"),
    "many-header-lines": lambda: _form(b"--" + BOUNDARY.encode() + b"\r\n" + b"X-A: b\r\n" * 100000
                                       + b"Content-Disposition: form-data; name=\"image\"\r\n\r\nA\r\n"),
    "20000-parts": lambda: _form(*[_part("steps", b"1") for _ in range(20000)]),
    "1MB-option-field": lambda: _form(PHOTO_PART, _part("steps", b"9" * MB)),
    "no-closing-boundary": lambda: PHOTO_PART + b"A" * MB,
    "no-boundary-at-all": lambda: b"A" * (2 * MB),
    "boundary-line-with-junk": lambda: b"--" + BOUNDARY.encode() + b"JUNK" * 1000 + b"\r\n" + PHOTO_PART,
}
# Well-formed forms whose file is made to hurt a naive parser: parsed in linear time, then refused as images.
WELL_FORMED_ATTACKS: Dict[str, Callable[[], bytes]] = {
    "2MB-part-of-crlf-dashes": lambda: _form(_part("image", b"\r\n--" * (MB // 2), "a.jpg")),
    "20MB-part-of-crlf-dashes": lambda: _form(_part("image", b"\r\n--" * (5 * MB), "a.jpg")),
    "20MB-part-of-near-boundaries": lambda: _form(_part("image", (b"\r\n--" + BOUNDARY[:-1].encode()) * (2 * MB),
                                                        "a.jpg")),
}


# -- the parser alone --------------------------------------------------------------------------------------------
def test_parses_what_clients_send():
    photo = (PHOTOS / "astronaut.png").read_bytes()
    body = _form(_part("image", photo, 'we"ird;name.png'.replace('"', "%22")), _part("steps", b"20"))
    parts = parse_form(b"\r\n" + body, boundary_of("multipart/form-data; boundary=%s" % BOUNDARY))
    assert [(p.name, p.filename, p.is_file) for p in parts] == [("image", "we%22ird;name.png", True),
                                                                  ("steps", None, False)]
    assert parts[0].data == photo and parts[1].data == b"20"
    quoted = boundary_of('multipart/form-data; charset=utf-8; boundary="----WebKitFormBoundaryA1b2"')
    assert quoted == b"----WebKitFormBoundaryA1b2"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_parser_refuses_each_attack_in_linear_time(name):
    body = ATTACKS[name]()
    started = time.perf_counter()
    with pytest.raises(MalformedForm):
        parse_form(body, BOUNDARY.encode(), FormLimits())
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=",
                                          "multipart/form-data; boundary=" + "b" * 71, "text/plain; boundary=x"])
def test_bad_content_types(content_type):
    with pytest.raises(MalformedForm):
        boundary_of(content_type)


# -- over a real uvicorn -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-multipart")
    srv = Server(engine, tiny_models, root / "data", root / "cache", header_timeout_s=2, body_timeout_s=3).start()
    yield srv
    srv.stop()


class HealthProbe(threading.Thread):
    """Times /healthz continuously on its own keep-alive connection while attacks run."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.timings, self.failures = port, [], []
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(response.status)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.timings.append(time.perf_counter() - started)
            time.sleep(0.01)


def _post(port: int, body: bytes, content_type: str = "multipart/form-data; boundary=" + BOUNDARY):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    connection.request("POST", "/toonify", body, {"Content-Type": content_type})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, payload, time.perf_counter() - started


def test_multipart_attacks_answered_at_once_while_healthz_stays_fast(server):
    log_before = server.log.stat().st_size
    baseline = healthz_timings(server.port)
    probe = HealthProbe(server.port)
    probe.start()
    time.sleep(0.3)
    answers: List = []
    try:
        for _ in range(5):  # a fast machine gets through one pass before the probe has enough samples
            for name, make in sorted(ATTACKS.items()) + sorted(WELL_FORMED_ATTACKS.items()):
                body = make()
                status, payload, seconds = _post(server.port, body)
                answers.append((name, status, seconds, payload[:200]))
            if len(probe.timings) > 20:
                break
    finally:
        probe.stopping.set()
        probe.join()
    for name, status, seconds, payload in answers:
        assert seconds < 3.0, (name, seconds)  # milliseconds when idle; a 20 MB body on a busy machine
        expected = 400 if name in ATTACKS else 415
        assert status == expected and b'"message"' in payload, (name, status, payload)
    assert not probe.failures and len(probe.timings) > 20
    assert_not_slower(probe.timings, baseline)
    assert server.log.stat().st_size - log_before < 20_000  # a line per request, never a line per byte


def test_header_dribblers_are_cut_off(server):
    """Slowloris: 200 connections each sending a header line every half second are closed after the header
    deadline (2 s here), and the service answers throughout."""
    sockets = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    started = time.monotonic()
    open_socks = list(sockets)
    while open_socks and time.monotonic() - started < 12:  # 6x the deadline: a busy machine is late, not wrong
        for sock in list(open_socks):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                open_socks.remove(sock)
        time.sleep(0.5)
    assert not open_socks, "%d dribbling connections still open after 12 s" % len(open_socks)
    for sock in sockets:
        sock.close()
    with server.client() as client:
        assert client.get("/healthz").status_code == 200


def test_slow_body_gets_408(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /toonify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=" +
                 BOUNDARY.encode() + b"\r\nContent-Length: 100000\r\n\r\n" + PHOTO_PART)
    started = time.monotonic()
    reply = b""
    while b"request_timeout" not in reply:  # headers and body may come in separate packets
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply, reply
    assert 2.5 < time.monotonic() - started < 12  # cut at the deadline, not before; late only when busy


# -- forms from MIME libraries, ambiguous forms ------------------------------------------------------------------
def _mime_form(*parts) -> Tuple[bytes, str]:
    """A form as Python's email.mime builds it (policy=HTTP): the file part, and a UTF-8 text part, base64."""
    form = MIMEMultipart("form-data", policy=policy.HTTP)
    for part, name, filename in parts:
        part.add_header("Content-Disposition", "form-data", name=name, **({"filename": filename} if filename else {}))
        form.attach(part)
    _, body = form.as_bytes(policy=policy.HTTP).split(b"\r\n\r\n", 1)
    return body, form["Content-Type"]


def test_parser_decodes_base64_and_quoted_printable_parts():
    photo = (PHOTOS / "obama.jpg").read_bytes()
    body, content_type = _mime_form((MIMEApplication(photo, "jpeg", policy=policy.HTTP), "image", "o.jpg"),
                                    (MIMEText("1\u00e9", "plain", "utf-8", policy=policy.HTTP), "seed", None))
    assert b"Content-Transfer-Encoding: base64" in body
    image, seed = parse_form(body, boundary_of(content_type))
    assert image.data == photo and seed.data == "1\u00e9".encode()
    quoted = _form(b'--%s\r\nContent-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: '
                   b"quoted-printable\r\n\r\nx=3Dy=\r\nz\r\n" % BOUNDARY.encode())
    assert parse_form(quoted, BOUNDARY.encode())[0].data == b"x=yz"


@pytest.mark.parametrize("encoding, data", [("base64", b"not base64 at all!"), ("base64", b"QUJD="),
                                            ("x-uuencode", b"begin 644 a")])
def test_parser_refuses_other_or_broken_transfer_encodings(encoding, data):
    body = _form(b'--%s\r\nContent-Disposition: form-data; name="image"; filename="a"\r\nContent-Transfer-Encoding: '
                 b"%s\r\n\r\n%s\r\n" % (BOUNDARY.encode(), encoding.encode(), data))
    with pytest.raises(MalformedForm, match="Content-Transfer-Encoding"):
        parse_form(body, BOUNDARY.encode())


def test_a_form_built_by_email_mime_is_accepted(server):
    photo = (PHOTOS / "obama.jpg").read_bytes()
    body, content_type = _mime_form((MIMEApplication(photo, "jpeg", policy=policy.HTTP), "image", "o.jpg"),
                                    (MIMEText("3", "plain", "utf-8", policy=policy.HTTP), "steps", None))
    with server.client() as client:
        response = client.post("/toonify?async=1", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 202, response.text
        assert response.json()["options"]["steps"] == 3
        client.delete("/jobs/%s" % response.json()["id"])


@pytest.mark.parametrize("fields", [[("steps", "2"), ("steps", "3")], [("steps", "2"), ("steps", "2")],
                                    [("face", "0"), ("face", "largest")]])
def test_an_option_sent_twice_is_422_naming_it(server, fields):
    with server.client() as client:
        response = client.post("/toonify", files=[("image", ("o.jpg", b"AAAA"))] + [(k, (None, v)) for k, v in fields])
        assert response.status_code == 422 and response.json()["code"] == "invalid_option"
        assert "'%s' sent more than once" % fields[0][0] in response.json()["message"]


def test_an_option_sent_as_a_file_is_422_naming_it(server):
    with server.client() as client:
        response = client.post("/toonify", files={"image": ("o.jpg", b"AAAA"), "strength": ("s.txt", b"0.5")})
        assert response.status_code == 422 and response.json()["code"] == "invalid_option"
        assert "'strength' is sent as a file" in response.json()["message"]


# -- limits on what comes before the body ------------------------------------------------------------------------
def _exchange(port: int, pieces: List[bytes], pause_s: float = 0.0) -> bytes:
    """Send ``pieces`` (pausing between them), then read until the server closes: the raw answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    reply = b""
    try:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause_s)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return reply


REQUEST_LINE = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize("name, pieces", [
    ("20 KB header at once", [REQUEST_LINE + b"X-Pad: " + b"a" * 20_000 + b"\r\n\r\n"]),
    ("20 KB header dribbled", [REQUEST_LINE] + [b"X-Pad-%d: " % i + b"a" * 4000 + b"\r\n" for i in range(5)]),
    ("3,000 header lines", [REQUEST_LINE + b"".join(b"X-N%d: 1\r\n" % i for i in range(3000)) + b"\r\n"]),
    ("150 short header lines", [REQUEST_LINE + b"".join(b"X%d:\r\n" % i for i in range(150)) + b"\r\n"]),
])
def test_headers_too_large_or_too_many_are_431(server, name, pieces):
    reply = _exchange(server.port, pieces, pause_s=0.05)
    assert reply.startswith(b"HTTP/1.1 431 "), (name, reply[:200])
    assert b'"code":' in reply and b"headers_too_large" in reply
    ok = _exchange(server.port, [REQUEST_LINE + b"".join(b"X%d: 1\r\n" % i for i in range(60)) +
                                 b"Connection: close\r\n\r\n"])
    assert ok.startswith(b"HTTP/1.1 200 ")


def test_expect_continue_with_a_body_over_the_limit_is_413_at_once(server):
    head = (b"POST /toonify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=" + BOUNDARY.encode()
            + b"\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n")
    started = time.monotonic()
    reply = _exchange(server.port, [head % 10 ** 12])
    assert reply.startswith(b"HTTP/1.1 413 ") and b"upload_too_large" in reply, reply[:300]
    assert b"100 Continue" not in reply and time.monotonic() - started < 2.5  # before the 3 s body deadline
    body = _form(PHOTO_PART)  # within the limit: asked for, then read
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(head % len(body))
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 415 ")  # "AAAA" is no image
    finally:
        sock.close()
