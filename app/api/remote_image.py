"""A photo fetched from a URL a client named (``image_url``, or a URL as the JSON body's ``image``), under the
limits of an upload: the same SSRF guard as webhooks (app.addresses), a byte cap while the body streams
(TOONIFY_MAX_UPLOAD_BYTES, checked against Content-Length first), and one deadline for the whole fetch
(TOONIFY_FETCH_TIMEOUT_S: DNS, connect, headers, body and every redirect), so a server that trickles is cut off
in time.

Each hop's host is resolved once, checked, and the connection goes to the checked address (HTTPS still
verifies the certificate against the host name): a second lookup cannot answer differently (DNS rebinding).
Redirects are followed up to MAX_REDIRECTS times, each one checked again. Everything runs on the event loop
with asyncio streams and h11 (uvicorn's HTTP/1.1 parser, sans-I/O), so a slow remote costs no thread and
never blocks the loop; only the DNS lookup runs in a thread, one of the bounded lookups of app.addresses
(never the shared threads every route uses): past that many at once a fetch is a 503.

Answers: 422 for a URL the server will not fetch, 413 for a photo over the upload limit, 502 when the remote
cannot be reached or answers anything but the photo, 504 when it is too slow."""
from __future__ import annotations

import asyncio
import ssl
from typing import List, Optional, Tuple
from urllib.parse import SplitResult, urljoin, urlsplit

import h11
from fastapi.concurrency import run_in_threadpool

from ..addresses import Address, AddressRefused, BoundedLookups, LookupsBusy, open_checked, target_and_host
from ..errors import ImageURLFailed, ImageURLTimedOut, InvalidOption, ServerBusy, UploadTooLarge
from .inflight import BodyCharge

MAX_REDIRECTS = 3
MAX_URL_CHARS = 2000  # browsers' practical limit; the form takes 4 KB per field
READ_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024  # the status line and headers of one answer
REDIRECTS = (301, 302, 303, 307, 308)
FIELD = "image_url"
DNS_RETRY_S = 10
LOOKUPS = BoundedLookups(8)  # photo URLs' lookups at once: past that a 503, never a thread webhooks use


def check_image_url(url: str) -> None:
    """The checks that need no DNS, made while the request is parsed (before any fetch)."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidOption("%s: the URL is longer than %d characters; host the photo at a shorter one or upload "
                            "the file" % (FIELD, MAX_URL_CHARS))
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise InvalidOption("%s: only http:// and https:// URLs are fetched; upload the file instead (or send a "
                            "data: URL as the JSON body's 'image')" % FIELD)


def _target_and_host(parts: SplitResult) -> Tuple[bytes, bytes]:
    try:
        return target_and_host(parts)
    except UnicodeError:
        raise InvalidOption("%s: the host name %r is not valid" % (FIELD, parts.hostname)) from None


async def _looked_up(url: str, allow_private: bool) -> List[Address]:
    """checked_addresses in one of the bounded DNS threads, or a 503 when they are all busy."""
    try:
        return await LOOKUPS.checked(url, allow_private, FIELD)
    except LookupsBusy as exc:
        raise ServerBusy("%s: %s; try again in %d s, or upload the file" % (FIELD, exc, DNS_RETRY_S),
                         retry_after_s=DNS_RETRY_S) from None


class _Fetch:
    """One fetch: its limits, and the bytes it holds of the request's share of the bodies in flight."""

    def __init__(self, max_bytes: int, allow_private: bool, charge: Optional[BodyCharge]) -> None:
        self.max_bytes, self.allow_private, self.charge = max_bytes, allow_private, charge
        self.base = charge.bytes if charge is not None else 0

    def too_large(self, host: str) -> UploadTooLarge:
        return UploadTooLarge("%s: the photo at %s is larger than %d MB, the limit of an upload; send a smaller "
                              "one" % (FIELD, host, self.max_bytes // 1_000_000))

    def hold(self, size: int) -> None:
        """Charge ``size`` fetched bytes to the bodies in flight (TOONIFY_MAX_BODY_BYTES_IN_FLIGHT), as an
        upload of that size would be: many fetches at once cannot hold unbounded memory."""
        if self.charge is not None and not self.charge.grow_to(self.base + size):
            raise self.charge.pool.busy()

    async def follow(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                addresses = await _looked_up(url, self.allow_private)
            except AddressRefused as exc:
                raise InvalidOption(str(exc)) from None
            parts = urlsplit(url)
            location, body = await self.get(parts, addresses)
            if location is None:
                return body
            try:
                url = urljoin(url, location)
            except ValueError:  # a Location no URL parser takes ("http://[::1")
                raise ImageURLFailed("%s: %s redirected to an invalid URL (%r); give the photo's final URL"
                                     % (FIELD, parts.hostname, location[:200])) from None
        raise ImageURLFailed("%s: more than %d redirects; give the photo's final URL" % (FIELD, MAX_REDIRECTS))

    async def connect(self, parts: SplitResult, addresses: List[Address]
                      ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await open_checked(parts, addresses)
        except OSError as exc:
            raise ImageURLFailed("%s: could not connect to %s (%s); check the URL, or upload the file"
                                 % (FIELD, parts.hostname, exc)) from None

    async def get(self, parts: SplitResult, addresses: List[Address]) -> Tuple[Optional[str], bytes]:
        """GET one URL: (the redirect's Location, b"") or (None, the body)."""
        reader, writer = await self.connect(parts, addresses)
        try:
            connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
            target, host = _target_and_host(parts)
            writer.write(connection.send(h11.Request(method="GET", target=target, headers=[
                ("Host", host), ("User-Agent", "toonify-fetch"), ("Accept", "image/*"),
                ("Accept-Encoding", "identity"), ("Connection", "close")])))
            writer.write(connection.send(h11.EndOfMessage()))
            await writer.drain()
            return await self.answer(connection, reader, parts.hostname or "")
        except h11.ProtocolError as exc:
            raise ImageURLFailed("%s: %s sent a broken HTTP answer (%s); check the URL, or upload the file"
                                 % (FIELD, parts.hostname, exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise ImageURLFailed("%s: the connection to %s failed (%s); try again, or upload the file"
                                 % (FIELD, parts.hostname, exc)) from None
        finally:
            writer.close()

    async def answer(self, connection: h11.Connection, reader: asyncio.StreamReader, host: str
                     ) -> Tuple[Optional[str], bytes]:
        chunks: List[bytes] = []
        size = 0
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(READ_BYTES))
            elif isinstance(event, h11.Response):
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
                if event.status_code in REDIRECTS and headers.get("location"):
                    return headers["location"], b""
                self.check_answer(event.status_code, headers, host)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_bytes:
                    raise self.too_large(host)
                self.hold(size)
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return None, chunks[0] if len(chunks) == 1 else await run_in_threadpool(b"".join, chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ImageURLFailed("%s: %s closed the connection before the photo ended; try again" % (FIELD, host))

    def check_answer(self, status: int, headers: dict, host: str) -> None:
        if status != 200:
            raise ImageURLFailed("%s: %s answered HTTP %d; check that the URL opens the photo in a browser, or "
                                 "upload the file" % (FIELD, host, status))
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise self.too_large(host)
        if headers.get("content-type", "").split(";")[0].strip().lower() == "text/html":
            raise InvalidOption("%s: %s answered with a web page, not a photo; use the address of the image "
                                "itself (in a browser: right-click the photo, Copy image address)" % (FIELD, host))
        self.hold(int(length) if length.isdigit() else 0)


async def fetch_image(url: str, max_bytes: int, timeout_s: float, allow_private: bool,
                      charge: Optional[BodyCharge] = None) -> bytes:
    """The photo at ``url``, within ``max_bytes`` and ``timeout_s`` (for everything, redirects included);
    ``charge``: the request's share of the bodies in flight, grown by the bytes fetched."""
    check_image_url(url)
    try:
        return await asyncio.wait_for(_Fetch(max_bytes, allow_private, charge).follow(url), timeout_s)
    except asyncio.TimeoutError:
        raise ImageURLTimedOut("%s: %s did not send the photo within %g s; try again, or download it and upload "
                               "the file" % (FIELD, urlsplit(url).hostname, timeout_s)) from None
