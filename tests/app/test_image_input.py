"""Photos the way serving clients send them (issue 27.3), over a real uvicorn server with tiny models: a JSON body
with a data URL or a URL, and the form's ``image_url``, fetched from a loopback HTTP server this test runs. They
make the same job as an upload of the same bytes; a loopback or private URL is refused unless
TOONIFY_FETCH_ALLOW_PRIVATE; a remote that trickles is cut at TOONIFY_FETCH_TIMEOUT_S, one that sends too much
at about TOONIFY_MAX_UPLOAD_BYTES; bad JSON and bad data URLs get 4xx answers that say what to do."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List

import pytest
from PIL import Image

from app.addresses import AddressRefused, checked_addresses
from app.api.json_body import cut_payload, data_url_bytes, json_body_bytes, json_request
from app.api.remote_image import LOOKUPS, check_image_url, fetch_image
from app.config import Settings
from app.errors import BadRequest, InvalidOption, ServerBusy, UnsupportedImage, UploadTooLarge
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

PHOTO = PHOTOS / "obama.jpg"
MAX_UPLOAD = 1_000_000
FETCH_TIMEOUT_S = 3
ENDLESS_BYTES = 64 * 1024 * 1024
TRICKLE_EVERY_S = 0.2


def form(**fields: str) -> Dict:
    """A multipart form of text fields only (httpx sends ``data=`` alone urlencoded, as curl's -d does)."""
    return {"files": {name: (None, value) for name, value in fields.items()}}


def data_url(data: bytes, media: str = "image/jpeg") -> str:
    return "data:%s;base64,%s" % (media, base64.b64encode(data).decode())


class _Handler(BaseHTTPRequestHandler):
    """One route per method ``serve_<path>``; what each endless route wrote is kept in ``server.sent``."""

    server: "PhotoHost"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/").split("?")[0].replace("-", "_")
        self.server.requests.append(self.path)
        try:
            getattr(self, "serve_" + name, self.serve_missing)()
        except (BrokenPipeError, ConnectionResetError):  # the service hung up, as it should
            pass

    def _head(self, status: int, headers: Dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def serve_photo(self) -> None:
        data = PHOTO.read_bytes()
        self._head(200, {"Content-Type": "image/jpeg", "Content-Length": str(len(data))})
        self.wfile.write(data)

    def serve_redirect(self) -> None:
        self._head(302, {"Location": "/photo", "Content-Length": "0"})

    def serve_loop(self) -> None:
        self._head(302, {"Location": "/loop", "Content-Length": "0"})

    def serve_to_file(self) -> None:
        self._head(302, {"Location": "file:///etc/passwd", "Content-Length": "0"})

    def serve_bad_redirect(self) -> None:
        self._head(302, {"Location": "http://[::1", "Content-Length": "0"})

    def serve_page(self) -> None:
        self._head(200, {"Content-Type": "text/html", "Content-Length": "13"})
        self.wfile.write(b"<html></html>")

    def serve_missing(self) -> None:
        self._head(404, {"Content-Length": "0"})

    def _trickle(self, byte: bytes) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.wfile.write(byte)
            time.sleep(TRICKLE_EVERY_S)

    def serve_trickle_body(self) -> None:
        self._head(200, {"Content-Type": "image/jpeg", "Content-Length": "1000000"})
        self._trickle(b"\xff")

    def serve_trickle_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        self._trickle(b"a")

    def serve_declared_huge(self) -> None:
        self._head(200, {"Content-Type": "image/jpeg", "Content-Length": str(10 ** 9)})
        self._trickle(b"\xff")

    def serve_endless(self) -> None:
        self._head(200, {"Content-Type": "image/jpeg"})  # no length: the body ends when the connection does
        chunk = b"\xff" * 65536
        self.server.sent["endless"] = 0
        while self.server.sent["endless"] < ENDLESS_BYTES:
            self.wfile.write(chunk)
            self.server.sent["endless"] += len(chunk)


class PhotoHost(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        self.requests: List[str] = []
        self.sent: Dict[str, int] = {}


@pytest.fixture(scope="module")
def host():
    photos = PhotoHost()
    thread = threading.Thread(target=photos.serve_forever, daemon=True)
    thread.start()
    yield photos
    photos.shutdown()
    photos.server_close()


@pytest.fixture(scope="module")
def open_server(engine, tiny_models, tmp_path_factory):
    """Fetches from loopback (TOONIFY_FETCH_ALLOW_PRIVATE=1), within a short time cap and a 1 MB upload limit."""
    root = tmp_path_factory.mktemp("input-open")
    srv = Server(engine, tiny_models, root / "data", root / "cache", fetch_allow_private="1",
                 fetch_timeout_s=FETCH_TIMEOUT_S, max_upload_bytes=MAX_UPLOAD).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def default_server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("input-default")
    srv = Server(engine, tiny_models, root / "data", root / "cache").start()
    yield srv
    srv.stop()


def _refused(response, status: int, code: str, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    for word in words:
        assert word in body["message"], body
    return body["message"]


def test_a_data_url_and_an_image_url_make_the_same_job_as_the_upload(open_server, host):
    photo = PHOTO.read_bytes()
    with open_server.client() as client:
        uploaded = client.post("/toonify?async=1", files={"image": ("obama.jpg", photo, "image/jpeg")},
                               data={"steps": "3", "seed": "7"})
        assert uploaded.status_code == 202, uploaded.text
        job = wait_for(client, uploaded.json()["id"])
        assert job["status"] == "succeeded", job
        # the same bytes and options: the same cache key, so the same job, whichever way the photo came
        for request in ({"json": {"image": data_url(photo), "steps": 3, "seed": "7"}},
                        form(image_url=host.url + "/photo", steps="3", seed="7"),
                        {"json": {"image": host.url + "/redirect", "steps": "3", "seed": 7}}):
            again = client.post("/toonify?async=1", **request)
            assert again.status_code == 200 and again.json()["id"] == job["id"], (request.keys(), again.text)
        image = client.get("/jobs/%s/result" % job["id"])
        as_json = client.post("/toonify", json={"image": data_url(photo), "steps": 3, "seed": 7})
        assert as_json.status_code == 200 and as_json.headers["content-type"] == "image/png"
        assert as_json.content == image.content
        # and the other way round: a job made from JSON, then found by the upload
        made = client.post("/toonify?async=1", json={"image": data_url(photo), "steps": 2, "seed": 8,
                                                      "face": 0, "strength": 0.5})
        assert made.status_code == 202, made.text
        assert made.json()["options"]["steps"] == 2 and made.json()["options"]["strength"] == 0.5
        wait_for(client, made.json()["id"])
        same = client.post("/toonify?async=1", files={"image": ("obama.jpg", photo, "image/jpeg")},
                           data={"steps": "2", "seed": "8", "face": "0", "strength": "0.5"})
        assert same.json()["id"] == made.json()["id"]


def test_loopback_and_private_urls_are_refused_by_default(default_server, host):
    before = len(host.requests)
    with default_server.client() as client:
        _refused(client.post("/toonify", **form(image_url=host.url + "/photo")), 422, "invalid_option",
                 "image_url", "127.0.0.1", "private or local address", "public URL")
        _refused(client.post("/toonify", json={"image": "http://10.0.0.1/photo.jpg"}), 422, "invalid_option",
                 "10.0.0.1", "private or local address")
        _refused(client.post("/toonify", json={"image": "http://[::ffff:169.254.169.254]/latest/meta-data"}),
                 422, "invalid_option", "private or local address")
    assert len(host.requests) == before  # refused before any connection


def _post_into(answers: List, server: Server, request: Dict) -> None:
    with server.client() as client:
        answers.append(client.post("/toonify", **request))


def test_a_trickling_remote_is_cut_at_the_time_cap_and_the_loop_goes_on(open_server, host):
    with open_server.client() as client:
        for path in ("/trickle-body", "/trickle-headers"):
            answers: List = []
            started = time.monotonic()
            slow = threading.Thread(target=_post_into, args=(answers, open_server, form(image_url=host.url + path)))
            slow.start()
            time.sleep(0.5)
            assert client.get("/healthz").status_code == 200
            assert slow.is_alive(), "the event loop answered while the fetch went on"
            slow.join(FETCH_TIMEOUT_S * 3 + 10)
            elapsed = time.monotonic() - started
            assert answers, "no answer within three times the cap"
            _refused(answers[0], 504, "image_url_timeout", "within %d s" % FETCH_TIMEOUT_S, "upload the file")
            assert elapsed >= FETCH_TIMEOUT_S * 0.9, elapsed


def test_a_remote_that_sends_too_much_is_cut_at_about_the_cap(open_server, host):
    with open_server.client() as client:
        started = time.monotonic()
        _refused(client.post("/toonify", json={"image": host.url + "/declared-huge"}), 413, "upload_too_large",
                 "larger than 1 MB")
        assert time.monotonic() - started < FETCH_TIMEOUT_S  # refused on its Content-Length, not timed out
        _refused(client.post("/toonify", **form(image_url=host.url + "/endless")), 413, "upload_too_large",
                 "image_url", "larger than 1 MB")
    time.sleep(0.5)  # the writer notices the closed connection
    # socket buffers on both sides hold a few MB more than the service read; the remote had 64 MB to send
    assert host.sent["endless"] < MAX_UPLOAD + 24 * 1024 * 1024, host.sent


def test_remote_errors_say_what_to_do(open_server, host):
    with open_server.client() as client:
        _refused(client.post("/toonify", **form(image_url=host.url + "/missing")), 502, "image_url_failed",
                 "HTTP 404", "opens the photo in a browser")
        _refused(client.post("/toonify", **form(image_url=host.url + "/a photo é.jpg?x=ü y")), 502,
                 "image_url_failed", "HTTP 404")  # sent percent-encoded, as a browser does
        assert host.requests[-1] == "/a%20photo%20%C3%A9.jpg?x=%C3%BC%20y"
        _refused(client.post("/toonify", **form(image_url=host.url + "/loop")), 502, "image_url_failed",
                 "more than 3 redirects")
        # every hop goes through the guard: a redirect to a file: URL is refused like the URL itself
        _refused(client.post("/toonify", **form(image_url=host.url + "/to-file")), 422, "invalid_option",
                 "only http:// and https://")
        _refused(client.post("/toonify", **form(image_url=host.url + "/bad-redirect")), 502, "image_url_failed",
                 "redirected to an invalid URL")
        _refused(client.post("/toonify", **form(image_url=host.url + "/page")), 422, "invalid_option",
                 "web page", "Copy image address")
        closed = "http://127.0.0.1:%d/photo" % _closed_port()
        _refused(client.post("/toonify", **form(image_url=closed)), 502, "image_url_failed", "could not connect")
        _refused(client.post("/toonify", **form(image_url="ftp://example.org/a.jpg")), 422, "invalid_option",
                 "http:// and https://")


def _closed_port() -> int:
    from tests.app.server import free_port

    return free_port()  # bound and released at once: nothing listens there


def test_bad_bodies_get_a_4xx_that_says_what_to_do(open_server):
    photo = PHOTO.read_bytes()
    good = data_url(photo)
    with open_server.client() as client:
        def post_json(body) -> object:
            return client.post("/toonify", content=body if isinstance(body, bytes) else json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})

        _refused(post_json(b"{not json"), 400, "bad_request", "not valid JSON", '{"image":')
        _refused(post_json(b"[1, 2]"), 400, "bad_request", "must be an object")
        _refused(post_json(b'{"image": "x", "image": "y"}'), 422, "invalid_option", "'image' sent more than once")
        _refused(post_json(b'{"image": "%s", "strength": NaN}' % good.encode()), 422, "invalid_option", "NaN")
        _refused(post_json(b'{"image": "%s", "seed": %s}' % (good.encode(), b"9" * 5000)), 422, "invalid_option",
                 "more than 18 digits")
        _refused(post_json({}), 400, "missing_image", "data:image/jpeg;base64")
        _refused(post_json({"image": 5}), 422, "invalid_option", "image: send a string")
        _refused(post_json({"image": good, "stenght": 1}), 422, "invalid_option", "'stenght'", "strength")
        _refused(post_json({"image": good, "steps": True}), 422, "invalid_option", "steps: send a string or a number")
        _refused(post_json({"image": good, "steps": 5000}), 422, "invalid_option", "steps")
        _refused(post_json({"image": good, "webhook": "https://example.org/hook"}), 422, "invalid_option",
                 "sends no webhooks")
        _refused(post_json({"image": "data:image/jpeg;base64,not base64!"}), 422, "invalid_option",
                 "not base64", "standard, padded base64")
        _refused(post_json({"image": "data:image/jpeg,%FF%D8"}), 422, "invalid_option", ";base64,")
        _refused(post_json({"image": data_url(b"hello", "text/plain")}), 415, "unsupported_image", "text/plain")
        _refused(post_json({"image": data_url(b"")}), 400, "empty_upload")
        _refused(post_json({"image": data_url(_png_of(10000, 6000), "image/png")}), 413, "image_too_large")
        _refused(post_json({"image": data_url(b"\xff" * (MAX_UPLOAD + 100))}), 413, "upload_too_large",
                 "larger than 1 MB")
        _refused(post_json({"image": data_url(b"\xff" * (3 * MAX_UPLOAD))}), 413, "upload_too_large",
                 "send a smaller photo")  # past the body limit: refused before the route
        _refused(client.post("/toonify", files={"image": ("a.jpg", photo, "image/jpeg")},
                             data={"image_url": "https://example.org/a.jpg"}), 422, "invalid_option", "not both")
        _refused(client.post("/toonify", **form(steps="3")), 400, "missing_image", "image_url")
        _refused(client.post("/toonify", content=b"photo", headers={"Content-Type": "text/plain"}), 415,
                 "unsupported_media_type", "image_url", "JSON")


def _png_of(width: int, height: int) -> bytes:
    """A blank PNG of this size: a few KB that would decode to width × height pixels."""
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, "PNG")
    return out.getvalue()


def test_the_largest_upload_fits_a_json_body():
    """A data URL of a photo at the upload limit, with options, fits the JSON body limit."""
    limit = json_body_bytes(MAX_UPLOAD, 1000)
    body = json.dumps({"image": data_url(b"\x00" * MAX_UPLOAD), "steps": 3, "style": "toon"}).encode()
    assert len(body) <= limit < len(body) + 1100


def test_data_urls_are_read_strictly():
    assert data_url_bytes("data:image/png;base64,aGk=", 10) == b"hi"
    assert data_url_bytes("data:;base64,aG\nk=", 10) == b"hi"  # no type, a line break as base64 tools write it
    assert data_url_bytes("data:application/octet-stream;charset=x;base64,aGk=", 10) == b"hi"
    for bad, error in (("data:image/png;base64,aGk", InvalidOption), ("data:image/png;base64,aG=k", InvalidOption),
                       ("data:image/png;base64,aGé=", InvalidOption), ("data:image/png,hi", InvalidOption),
                       ("data:text/html;base64,aGk=", UnsupportedImage),
                       ("data:image/png;base64," + "A" * 20, UploadTooLarge)):
        with pytest.raises(error):
            data_url_bytes(bad, 10)


@pytest.mark.parametrize("escape", [False, True], ids=["plain", "escaped slashes and line breaks"])
def test_a_large_data_url_is_cut_out_and_decoded_in_windows(escape):
    """Over several windows (1 MB each), a window edge inside a JSON escape, and the padding at the very end."""
    photo = os.urandom(3 * 1024 * 1024 + 1)  # a length that needs padding
    text = base64.b64encode(photo).decode()
    if escape:  # as PHP's json_encode and base64 tools with line breaks write it
        text = "\n".join(text[i:i + 76] for i in range(0, len(text), 76)).replace("/", "\\/")
    body = ('{"steps": 3, "image" : "data:image/jpeg;base64,%s", "seed": 1}' % text).encode()
    rest, payload = cut_payload(body)
    assert rest == b'{"steps": 3, "image" : "data:image/jpeg;base64,", "seed": 1}' and len(payload) == len(text)
    request = json_request(body, Settings(max_upload_bytes=len(photo)))
    assert request.upload == photo and request.options.steps == 3 and request.options.seed == 1
    with pytest.raises(UploadTooLarge):
        json_request(body, Settings(max_upload_bytes=len(photo) - 1))
    with pytest.raises(InvalidOption, match="not base64"):  # padding that is not at the end
        json_request(body.replace(b'", "seed"', b'=AAAA", "seed"'), Settings(max_upload_bytes=len(photo) + 9))


def test_the_options_of_a_json_body_are_bounded():
    """Only the photo may be large: 30 MB of [{}, {}, …] must not become gigabytes of objects."""
    with pytest.raises(BadRequest, match="larger than 64 KB"):
        json_request(b'{"image": "https://example.org/a.jpg", "x": [%s{}]}' % (b"{}, " * 20000), Settings())
    with pytest.raises(InvalidOption, match="'image' sent more than once"):  # a data URL after the first key
        json_request(b'{"image": "https://example.org/a.jpg", "image": "data:;base64,aGk="}', Settings())


def test_a_json_url_is_checked_before_any_fetch():
    settings = Settings(max_upload_bytes=MAX_UPLOAD)
    request = json_request(b'{"image": " https://example.org/a.jpg ", "webhook_events_filter": []}', settings)
    assert request.image_url == "https://example.org/a.jpg" and request.upload == b""
    for url in ("file:///etc/passwd", "gopher://example.org/", "https://example.org/" + "a" * 2000):
        with pytest.raises(InvalidOption):
            check_image_url(url)


@pytest.mark.parametrize("url, words", [
    ("http://user:pw@example.org/a.jpg", "no credentials"), ("http:///a.jpg", "with a host"),
    ("http://127.0.0.1:99999/a.jpg", "not a valid URL"), ("http://localhost/a.jpg", "private or local"),
    ("https://[::1]/a.jpg", "private or local"), ("http://0.0.0.0/a.jpg", "private or local")])
def test_the_url_guard_names_the_field_and_the_problem(url, words):
    with pytest.raises(AddressRefused, match=words) as refused:
        checked_addresses(url, allow_private=False, field="image_url")
    assert str(refused.value).startswith("image_url: ")


def test_allowing_private_addresses_returns_the_checked_address():
    assert [str(a) for a in checked_addresses("http://127.0.0.1:8/a.jpg", allow_private=True, field="image_url")] \
        == ["127.0.0.1"]


def test_photo_host_lookups_have_their_own_bounded_threads(host):
    """A lookup that hangs keeps its thread until the resolver gives up: past LOOKUPS.threads of them a fetch
    is a 503 at once, and the threads every other route uses are never taken."""
    url = host.url + "/photo"
    held = 0
    try:
        while LOOKUPS.slots.acquire(blocking=False):  # as hung lookups would hold them
            held += 1
        assert held == LOOKUPS.threads
        with pytest.raises(ServerBusy, match="looking up %d hosts" % LOOKUPS.threads) as busy:
            asyncio.run(fetch_image(url, 10_000_000, 30, allow_private=True))
        assert busy.value.retry_after_s
    finally:
        for _ in range(held):
            LOOKUPS.slots.release()
    assert asyncio.run(fetch_image(url, 10_000_000, 30, allow_private=True)) == PHOTO.read_bytes()
    taken = [LOOKUPS.slots.acquire(blocking=False) for _ in range(LOOKUPS.threads)]  # a finished lookup gave its back
    for _ in taken:
        LOOKUPS.slots.release()
    assert all(taken)
