"""The request of ``POST /toonify`` → validated options, the photo (or its URL) and the webhook request. The
multipart form is read here; the JSON body (app.api.json_body) ends in the same ``parsed_request``, so both
are validated alike. Unknown fields are refused by name: a misspelt option (``stenght``) silently ignored is a
wrong result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from pydantic import ValidationError
from starlette.requests import Request

from ..config import Settings
from ..errors import InvalidOption, MissingImage, TooManyFiles, UnsupportedMediaType
from ..jobs.webhook_outbox import Webhook
from ..options import ToonifyOptions
from .middleware import FORM_SCOPE_KEY
from .multipart_guard import FormPart as Part
from .remote_image import check_image_url

WEBHOOK_EVENTS = ("start", "progress", "completed")
PHOTO_FIELDS = ("image", "image_url")
OTHER_FIELDS = ("method", "webhook", "webhook_events_filter")
METHODS = ("project", "fast")


@dataclass(frozen=True)
class ToonifyRequest:
    options: ToonifyOptions
    upload: bytes  # b"" when the photo is to be fetched from image_url
    webhook: Optional[Webhook]
    method: str = "project"
    image_url: Optional[str] = None


def option_fields() -> List[str]:
    """Every field but the photo, in the order the docs list them."""
    return list(ToonifyOptions.model_fields) + list(OTHER_FIELDS)


def known_fields() -> List[str]:
    return list(PHOTO_FIELDS) + option_fields()


def form_parts(request: Request, accepted: str = "multipart/form-data in a field named 'image'") -> List[Part]:
    """The form the middleware parsed (app.api.multipart_guard): no route hands a body to python-multipart."""
    parts = request.scope.get(FORM_SCOPE_KEY)
    if parts is None:
        raise UnsupportedMediaType("send the photo as %s" % accepted)
    return parts


def _values(parts: List[Part], name: str) -> List[str]:
    return [part.data.decode("utf-8", "replace") for part in parts if part.name == name and not part.is_file]


def refuse_unknown(parts: List[Part], known: List[str]) -> None:
    """Every field but the photo is known, a text field, and sent once: an option sent twice or as a file would
    otherwise be chosen or dropped silently (the first value winning, or the default)."""
    unknown = sorted({part.name for part in parts} - set(known))
    if unknown:
        raise InvalidOption("unknown field %s; the fields are: %s"
                       % (", ".join("'%s'" % name for name in unknown), ", ".join(known)))
    options = [part for part in parts if part.name != "image"]
    for part in options:
        if part.is_file:
            raise InvalidOption("'%s' is sent as a file; send it as a text field (curl -F '%s=…', not "
                                "-F '%s=@file')" % (part.name, part.name, part.name))
    names = [part.name for part in options]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidOption("%s sent more than once; send each field once"
                            % ", ".join("'%s'" % name for name in repeated))


def _options(fields: Mapping[str, object], settings: Settings) -> ToonifyOptions:
    values = {name: fields[name] for name in ToonifyOptions.model_fields if fields.get(name) not in (None, "")}
    values.setdefault("steps", str(settings.default_steps))
    try:
        options = ToonifyOptions(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "options"
        raise InvalidOption("%s: %s" % (name, first["msg"])) from None
    if options.steps > settings.max_steps:
        raise InvalidOption("steps: at most %d on this server" % settings.max_steps)
    return options


def _webhook(url: str, events: List[str], settings: Settings) -> Optional[Webhook]:
    names = [name.strip() for value in events for name in value.split(",") if name.strip()]
    if not url:
        if names:
            raise InvalidOption("webhook_events_filter needs a 'webhook' URL")
        return None
    if not settings.webhook_secret:
        raise InvalidOption("webhook: this server sends no webhooks (its operator has not set "
                                         "TOONIFY_WEBHOOK_SECRET); follow /jobs/{id}/events instead")
    wrong = [name for name in names if name not in WEBHOOK_EVENTS]
    if wrong:
        raise InvalidOption("webhook_events_filter: %s is not one of %s"
                       % (", ".join(wrong), ", ".join(WEBHOOK_EVENTS)))
    return Webhook(url, frozenset(names or WEBHOOK_EVENTS))


def single_upload(parts: List[Part]) -> bytes:
    uploads = [part.data for part in parts if part.name == "image" and part.is_file]
    if not uploads:
        raise MissingImage("no photo: send it as a file in the multipart field 'image' (or its URL in "
                           "'image_url')")
    if len(uploads) > 1:
        raise TooManyFiles("send one photo per request (got %d in 'image')" % len(uploads))
    return uploads[0]


def _method(value: str) -> str:
    method = value.strip().lower() or "project"
    if method not in METHODS:
        raise InvalidOption("method must be 'project' (faithful, slow) or 'fast' (distilled student)")
    return method


def parsed_request(fields: Mapping[str, object], events: List[str], upload: bytes, image_url: Optional[str],
                   settings: Settings) -> ToonifyRequest:
    """A request from its fields (text from a form, text or numbers from JSON), the names of its webhook
    events, and its photo: the bytes, or the URL to fetch them from (checked here as far as no DNS is needed)."""
    if image_url is not None:
        check_image_url(image_url)
    return ToonifyRequest(_options(fields, settings), upload, _webhook(str(fields.get("webhook") or ""), events,
                                                                       settings),
                          _method(str(fields.get("method") or "")), image_url)


def _photo(parts: List[Part]) -> Tuple[bytes, Optional[str]]:
    """The uploaded photo, or the URL in 'image_url': exactly one of them."""
    url = (_values(parts, "image_url") or [""])[0].strip()
    if not url:
        return single_upload(parts), None
    if any(part.name == "image" and part.is_file for part in parts):
        raise InvalidOption("send the photo either as the file 'image' or as its URL in 'image_url', not both")
    return b"", url


def toonify_request(parts: List[Part], settings: Settings) -> ToonifyRequest:
    upload, url = _photo(parts)
    refuse_unknown(parts, known_fields())
    fields = {part.name: part.data.decode("utf-8", "replace") for part in parts if not part.is_file}
    return parsed_request(fields, _values(parts, "webhook_events_filter"), upload, url, settings)
