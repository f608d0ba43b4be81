"""The JSON body of ``POST /toonify``, as serving clients (Cog/Replicate, BentoML) send it:
``{"image": "<http(s) URL | data: URL>", ...the form's options}``. It is read strictly — an object, known keys,
each once, scalar values, no NaN — and ends in the form's ``parsed_request``, so its options are validated
alike. A data URL's photo has the upload's size limit; the body may be larger by base64's third
(app.api.middleware lets it). Parsing and decoding run in a worker thread (a body is tens of MB)."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Dict, List, Optional, Tuple

from ..config import Settings
from ..errors import BadRequest, InvalidOption, MissingImage, UnsupportedImage, UploadTooLarge
from ..options import MAX_DIGITS
from .form import WEBHOOK_EVENTS, ToonifyRequest, option_fields, parsed_request
from .multipart_guard import DEFAULT_LIMITS

EXAMPLE = '{"image": "https://example.org/photo.jpg"} or {"image": "data:image/jpeg;base64,/9j/4AAQ…"}'
PHOTO_TYPES = ("image/", "application/octet-stream")


def json_body_bytes(max_upload_bytes: int, overhead_bytes: int) -> int:
    """The largest JSON body: the largest upload as base64 (4 characters per 3 bytes), plus the options."""
    return 4 * -(-max_upload_bytes // 3) + overhead_bytes


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise InvalidOption("%s sent more than once; send each key once" % ", ".join("'%s'" % k for k in repeated))
    return dict(pairs)


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


def data_url_bytes(url: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:[<media type>][;base64],<data>`` URL; only base64 ones (a photo is binary)."""
    header, comma, payload = url.partition(",")
    params = [param.strip().lower() for param in header[len("data:"):].split(";")]
    if not comma or "base64" not in params[1:]:
        raise InvalidOption("image: a data URL must be 'data:<type>;base64,<the photo in base64>', like "
                            "data:image/jpeg;base64,/9j/4AAQ…")
    if params[0] and not params[0].startswith(PHOTO_TYPES):
        raise UnsupportedImage("image: the data URL says %s; send a photo (data:image/jpeg;base64,…)" % params[0][:60])
    try:
        compact = payload.encode("ascii").translate(None, b" \t\r\n")  # line breaks, as base64 tools write them
    except UnicodeEncodeError:
        raise InvalidOption("image: the data URL's payload is not base64 (it has non-ASCII characters); encode "
                            "the file's bytes with standard, padded base64") from None
    if len(compact) // 4 * 3 > max_bytes + 3:  # before decoding anything
        raise UploadTooLarge("image: the photo is larger than %d MB; send a smaller one" % (max_bytes // 1_000_000))
    try:
        data = base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise InvalidOption("image: the data URL's payload is not valid base64 (%s); encode the file's bytes with "
                            "standard, padded base64" % exc) from None
    if len(data) > max_bytes:
        raise UploadTooLarge("image: the photo is larger than %d MB; send a smaller one" % (max_bytes // 1_000_000))
    return data


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
    """The request a JSON body makes. Blocks for tens of milliseconds on a large data URL: call it in a thread."""
    document = _document(body)
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
        upload = data_url_bytes(image, settings.max_upload_bytes)
    else:
        upload, url = b"", image.strip()
    fields = {name: _scalar(name, document.get(name)) for name in option_fields()
              if name != "webhook_events_filter"}
    return parsed_request(fields, _events(document.get("webhook_events_filter")), upload, url, settings)
