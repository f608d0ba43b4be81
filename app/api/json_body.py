"""The JSON body of ``POST /toonify``, as serving clients (Cog/Replicate, BentoML) send it:
``{"image": "<http(s) URL | data: URL>", ...the form's options}``. It is read strictly — an object, known keys,
each once, scalar values, no NaN — and ends in the form's ``parsed_request``, so its options are validated
alike. A data URL's photo has the upload's size limit; the body may be larger by base64's third
(app.api.middleware lets it).

A body is tens of MB, and a worker thread alone does not keep the event loop going: ``json.loads`` and
``b64decode`` hold the GIL for 0.2 s each over a 25 MB photo. So the data URL's payload is cut out of the body
with windowed searches before the rest (at most MAX_OPTIONS_BYTES: a few short options, so a body of 30 MB of
``[{}, {}, …]`` cannot make gigabytes of objects) is parsed, and it is checked and decoded a window at a
time: no single call holds the GIL for more than a few milliseconds."""
from __future__ import annotations

import binascii
import json
import re
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..config import Settings
from ..errors import BadRequest, InvalidOption, MissingImage, UnsupportedImage, UploadTooLarge
from ..options import MAX_DIGITS
from .form import WEBHOOK_EVENTS, ToonifyRequest, option_fields, parsed_request
from .multipart_guard import DEFAULT_LIMITS, find

EXAMPLE = '{"image": "https://example.org/photo.jpg"} or {"image": "data:image/jpeg;base64,/9j/4AAQ…"}'
PHOTO_TYPES = ("image/", "application/octet-stream")
MAX_OPTIONS_BYTES = 64 * 1024  # the body without the data URL's payload
MAX_DATA_URL_HEADER = 200  # "data:image/jpeg;base64," and any parameters
WINDOW = 1 << 20  # base64 characters handled per call: a few milliseconds holding the GIL
EMPTY = memoryview(b"")
_IMAGE_KEY = re.compile(rb'"image"\s*:\s*$')
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
JSON_ESCAPES = ((b"\\/", b"/"), (b"\\n", b""), (b"\\r", b""), (b"\\t", b""))  # as JSON encoders write base64


def json_body_bytes(max_upload_bytes: int, overhead_bytes: int) -> int:
    """The largest JSON body: the largest upload as base64 (4 characters per 3 bytes), plus the options."""
    return 4 * -(-max_upload_bytes // 3) + overhead_bytes


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    document = dict(pairs)
    if len(document) < len(pairs):
        repeated = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise InvalidOption("%s sent more than once; send each key once"
                            % ", ".join("'%s'" % k[:40] for k in repeated[:10]))
    return document


def _not_a_number(constant: str) -> None:
    raise InvalidOption("%s is not a number this API reads; send a finite number" % constant)


def _integer(text: str) -> int:
    """Python reads an integer of n digits in O(n²) time (holding the GIL): none has more than MAX_DIGITS."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise InvalidOption("a number with more than %d digits; no option takes one" % MAX_DIGITS)
    return int(text)


def _document(body: bytes) -> Dict[str, Any]:
    try:
        document = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_not_a_number,
                              parse_int=_integer)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, an integer of 4,300+ digits
        raise BadRequest("the body is not valid JSON (%s); send %s" % (str(exc)[:200], EXAMPLE)) from None
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object, like %s" % EXAMPLE)
    return document


def cut_payload(body: bytes) -> Tuple[bytes, memoryview]:
    """(the body with the image's data URL payload cut out, that payload as sent, not copied), or (body, empty)
    when the body has no ``"image": "data:…,`` string: the first ``"data:`` of the body, right after the key
    ``image``."""
    start = find(body, b'"data:', 0)
    if start < 0 or not _IMAGE_KEY.search(body, max(0, start - 64), start):
        return body, EMPTY
    comma = body.find(b",", start, start + MAX_DATA_URL_HEADER)
    end = find(body, b'"', comma + 1) if comma >= 0 else -1
    if end < 0:
        return body, EMPTY
    return body[:comma + 1] + body[end:], memoryview(body)[comma + 1:end]


def _windows(text: memoryview) -> Iterator[Tuple[bytes, bool]]:
    """``text`` in pieces of about WINDOW bytes, none ending inside a JSON escape, each with whether it is the
    last: one window is copied at a time, never the whole payload."""
    start = 0
    while start < len(text):
        stop = start + WINDOW
        while stop < len(text) and text[stop - 1] == ord("\\"):
            stop += 1
        yield bytes(text[start:stop]), stop >= len(text)
        start = stop


def _compact(piece: bytes) -> bytes:
    for escape, plain in JSON_ESCAPES:
        piece = piece.replace(escape, plain)
    return piece.translate(None, b" \t\r\n")  # line breaks, as base64 tools write them


def base64_bytes(text: memoryview, max_bytes: int) -> bytes:
    """Standard padded base64 (line breaks and JSON's escaped slashes allowed) → at most ``max_bytes``, checked
    and decoded a window at a time."""
    decoded: List[bytes] = []
    carry, size, ended = b"", 0, False
    for window, last in _windows(text):
        piece = carry + _compact(window)
        usable = len(piece) if last else len(piece) // 4 * 4
        piece, carry = piece[:usable], piece[usable:]
        if (ended and piece) or not _BASE64.fullmatch(piece):
            raise InvalidOption("image: the data URL's payload is not base64 (a character outside A-Z, a-z, 0-9, "
                                "+ and /, or misplaced '='); encode the file's bytes with standard, padded base64")
        if len(piece) % 4:
            raise InvalidOption("image: the data URL's payload is cut short (its length is not a multiple of 4); "
                                "encode the whole file with standard, padded base64")
        ended = piece.endswith(b"=")
        decoded.append(binascii.a2b_base64(piece))
        size += len(decoded[-1])
        if size > max_bytes:
            raise UploadTooLarge("image: the photo is larger than %d MB; send a smaller one"
                                 % (max_bytes // 1_000_000))
    return b"".join(decoded)


def data_url_bytes(url: str, max_bytes: int, payload: memoryview = EMPTY) -> bytes:
    """The bytes of a ``data:[<media type>][;base64],<data>`` URL, only base64 ones (a photo is binary); its
    payload is in ``url``, or in ``payload`` when it was cut out of the body (cut_payload)."""
    header, comma, inline = url.partition(",")
    params = [param.strip().lower() for param in header[len("data:"):].split(";")]
    if not comma or "base64" not in params[1:]:
        raise InvalidOption("image: a data URL must be 'data:<type>;base64,<the photo in base64>', like "
                            "data:image/jpeg;base64,/9j/4AAQ…")
    if params[0] and not params[0].startswith(PHOTO_TYPES):
        raise UnsupportedImage("image: the data URL says %s; send a photo (data:image/jpeg;base64,…)" % params[0][:60])
    if inline:  # a small body, parsed whole: JSON escapes already undone
        payload = memoryview(inline.encode("ascii", "replace"))  # a non-ASCII character is refused as base64
    return base64_bytes(payload, max_bytes)


def _scalar(name: str, value: Any) -> Any:
    """A JSON option as the form would carry it: text or a number (an integer as its digits, so that text-typed
    fields such as face take it too)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
        raise InvalidOption("%s: send a string or a number, not %s" % (name, json.dumps(value)[:60]))
    if isinstance(value, str) and len(value) > DEFAULT_LIMITS.max_field_bytes:
        raise InvalidOption("%s: longer than %d characters" % (name, DEFAULT_LIMITS.max_field_bytes))
    return str(value) if isinstance(value, int) else value


def _events(value: Any) -> List[str]:
    if value is None or isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and len(value) <= len(WEBHOOK_EVENTS) and all(
            isinstance(item, str) and len(item) <= 40 for item in value):
        return value
    raise InvalidOption("webhook_events_filter: send a list of event names (%s), like [\"completed\"]"
                        % ", ".join(WEBHOOK_EVENTS))


def json_request(body: bytes, settings: Settings) -> ToonifyRequest:
    """The request a JSON body makes. Takes a few tenths of a second for a large data URL, in short calls that let
    other threads run: call it in a worker thread."""
    rest, payload = cut_payload(body)
    if len(rest) > MAX_OPTIONS_BYTES:
        raise BadRequest("the JSON body without the photo is larger than %d KB; send the image and the options only"
                         % (MAX_OPTIONS_BYTES // 1024))
    document = _document(rest)
    known = ["image"] + option_fields()
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise InvalidOption("unknown key %s; the keys are: %s"
                            % (", ".join("'%s'" % name[:40] for name in unknown[:10]), ", ".join(known)))
    image = document.get("image")
    if image is None or image == "":
        raise MissingImage("no photo: send %s" % EXAMPLE)
    if not isinstance(image, str):
        raise InvalidOption("image: send a string: an http(s) URL or a data: URL")
    url: Optional[str] = None
    if image[:5].lower() == "data:":
        upload = data_url_bytes(image, settings.max_upload_bytes, payload)
    else:
        upload, url = b"", image.strip()
    fields = {name: _scalar(name, document.get(name)) for name in option_fields()
              if name != "webhook_events_filter"}
    return parsed_request(fields, _events(document.get("webhook_events_filter")), upload, url, settings)
