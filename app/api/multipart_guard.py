"""A strict multipart/form-data parser for uploads, so python-multipart never sees a request body.

python-multipart 0.0.8 (the last release for Python 3.7) spends seconds to minutes of event-loop time on
small hostile bodies: junk after the closing boundary (a log line per byte), CRLF floods before the first
boundary, huge part headers, parts made of ``\\r\\n--`` repeated. This parser works on the buffered body with
``bytes.find`` only, so its time is linear and C-fast whatever the bytes; anything outside the shape browsers,
curl and HTTP libraries send is refused with a :class:`MalformedForm` naming what was wrong (HTTP 400).
"""
from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import MalformedForm

CRLF = b"\r\n"
FIND_WINDOW = 256 * 1024  # bytes searched per call: a bounded stretch of time holding the GIL
# RFC 2046 §5.1.1: 1–70 characters from a fixed set, not ending in a space
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_PARAM = re.compile(r';\s*([A-Za-z0-9_\-*]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def find(body: bytes, needle: bytes, start: int) -> int:
    """``body.find(needle, start)`` in windows: on Python 3.7 a search through data full of near-matches
    (``\r\n--`` repeated) costs ~12 ns a byte while holding the GIL; windows let other threads (the event
    loop) run between them when the parser runs in a worker thread."""
    while start < len(body):
        stop = start + FIND_WINDOW
        found = body.find(needle, start, stop + len(needle) - 1)
        if found >= 0:
            return found
        start = stop
    return -1


@dataclass(frozen=True)
class FormLimits:
    max_parts: int = 16
    max_preamble_bytes: int = 1024  # bytes allowed before the first boundary (browsers send none)
    max_epilogue_bytes: int = 1024  # bytes allowed after the closing boundary (curl sends a CRLF)
    max_header_line_bytes: int = 1024
    max_header_block_bytes: int = 4096  # all header lines of one part
    max_field_bytes: int = 4096  # a non-file field (the options are a few characters)


DEFAULT_LIMITS = FormLimits()


@dataclass
class FormPart:
    name: str
    filename: Optional[str]
    content_type: str
    data: bytes

    @property
    def is_file(self) -> bool:
        return self.filename is not None


def header_params(value: str) -> Dict[str, str]:
    """``form-data; name="image"; filename="a.jpg"`` → {"name": "image", "filename": "a.jpg"}."""
    params = {}
    for key, raw in _PARAM.findall(";" + value.split(";", 1)[1] if ";" in value else ""):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key.lower()] = raw
    return params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type, checked against RFC 2046."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise MalformedForm("send the photo as multipart/form-data in a field named 'image'")
    boundary = header_params(content_type).get("boundary", "")
    if not _BOUNDARY.match(boundary):
        raise MalformedForm("the multipart boundary is missing or invalid (1–70 plain characters)")
    return boundary.encode("ascii")


def _part_headers(block: bytes, limits: FormLimits) -> Dict[str, str]:
    headers = {}
    for line in block.split(CRLF) if block else []:
        if len(line) > limits.max_header_line_bytes:
            raise MalformedForm("a part header line is longer than %d bytes" % limits.max_header_line_bytes)
        name, colon, value = line.partition(b":")
        if not colon or not name or name[:1] in (b" ", b"\t"):
            raise MalformedForm("a part header line is not 'Name: value'")
        headers[name.decode("latin-1").strip().lower()] = value.decode("utf-8", "replace").strip()
    return headers


IDENTITY_ENCODINGS = ("", "7bit", "8bit", "binary")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


def decode_transfer_encoding(name: str, encoding: str, data: bytes) -> bytes:
    """A part's bytes after its ``Content-Transfer-Encoding``: RFC 7578 deprecates the header, but forms
    built with Python's email.mime (and other MIME libraries) send base64 or quoted-printable parts."""
    encoding = encoding.strip().lower()
    if encoding in IDENTITY_ENCODINGS:
        return data
    if encoding == "base64":
        compact = data.translate(None, b" \t\r\n")
        if len(compact) % 4 == 0 and _NOT_BASE64.search(compact) is None:
            try:
                return binascii.a2b_base64(compact)
            except binascii.Error:
                pass
        raise MalformedForm("the part %r says 'Content-Transfer-Encoding: base64' but is not valid base64; "
                            "send the file's bytes as they are, without that header" % name[:40])
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    raise MalformedForm("the part %r has 'Content-Transfer-Encoding: %s'; send the file's bytes as they are, "
                        "without that header (base64 and quoted-printable are decoded)" % (name[:40], encoding[:40]))


def _read_part(body: bytes, start: int, delimiter: bytes, limits: FormLimits):
    """One part from ``start`` (just after its boundary line): (part, index of the next delimiter)."""
    if body.startswith(CRLF, start):
        block, data_start = b"", start + 2
    else:
        end = body.find(CRLF + CRLF, start, start + limits.max_header_block_bytes + 4)
        if end < 0:
            raise MalformedForm("a part's headers are longer than %d bytes or never end"
                                % limits.max_header_block_bytes)
        block, data_start = body[start:end], end + 4
    headers = _part_headers(block, limits)
    disposition = headers.get("content-disposition", "")
    params = header_params(disposition)
    if disposition.split(";", 1)[0].strip().lower() != "form-data" or "name" not in params:
        raise MalformedForm("every part needs 'Content-Disposition: form-data; name=\"…\"'")
    next_delimiter = find(body, CRLF + delimiter, data_start)
    if next_delimiter < 0:
        raise MalformedForm("the form is cut short: its closing boundary is missing")
    filename = params.get("filename")
    if filename is None and next_delimiter - data_start > limits.max_field_bytes:
        raise MalformedForm("the form field %r is longer than %d bytes" % (params["name"][:40],
                                                                              limits.max_field_bytes))
    data = decode_transfer_encoding(params["name"], headers.get("content-transfer-encoding", ""),
                                    body[data_start:next_delimiter])
    part = FormPart(params["name"], filename, headers.get("content-type", "text/plain"), data)
    return part, next_delimiter + 2


def parse_form(body: bytes, boundary: bytes, limits: FormLimits = DEFAULT_LIMITS) -> List[FormPart]:
    """Every part of a multipart body, in order. Linear in the body size; raises MalformedForm. Run it in a
    worker thread: then no search holds the event loop for more than a few milliseconds."""
    delimiter = b"--" + boundary
    first = body.find(delimiter, 0, limits.max_preamble_bytes + len(delimiter))
    if first < 0:
        raise MalformedForm("the form does not start with its boundary (at most %d bytes may come before it)"
                            % limits.max_preamble_bytes)
    if first > 0 and body[first - 2:first] != CRLF:
        raise MalformedForm("the first boundary must start a line")
    parts: List[FormPart] = []
    position = first
    while True:
        position += len(delimiter)
        if body.startswith(b"--", position):
            epilogue = len(body) - position - 2
            if epilogue > limits.max_epilogue_bytes:
                raise MalformedForm("%d bytes follow the closing boundary (at most %d)"
                                    % (epilogue, limits.max_epilogue_bytes))
            return parts
        line_end = body.find(CRLF, position, position + 66)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MalformedForm("a boundary line has trailing characters")
        if len(parts) == limits.max_parts:
            raise MalformedForm("the form has more than %d parts" % limits.max_parts)
        part, position = _read_part(body, line_end + 2, delimiter, limits)
        parts.append(part)
