"""The multipart form of ``POST /toonify`` → validated options, the photo and the webhook request. Unknown
fields are refused by name: a misspelt option (``stenght``) silently ignored is a wrong result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, List, Optional

from pydantic import ValidationError
from starlette.requests import Request

from ..config import Settings
from ..errors import InvalidOption, MissingImage, TooManyFiles, UnsupportedMediaType
from ..options import ToonifyOptions
from .middleware import FORM_SCOPE_KEY
from .multipart_guard import FormPart as Part

WEBHOOK_EVENTS = ("start", "progress", "completed")
OTHER_FIELDS = ("image", "method", "webhook", "webhook_events_filter")
METHODS = ("project", "fast")


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    events: FrozenSet[str]


@dataclass(frozen=True)
class ToonifyRequest:
    options: ToonifyOptions
    upload: bytes
    webhook: Optional[WebhookRequest]
    method: str = "project"


def known_fields() -> List[str]:
    return list(OTHER_FIELDS[:1]) + list(ToonifyOptions.model_fields) + list(OTHER_FIELDS[1:])


def form_parts(request: Request) -> List[Part]:
    """The form the middleware parsed (app.api.multipart_guard): no route hands a body to python-multipart."""
    parts = request.scope.get(FORM_SCOPE_KEY)
    if parts is None:
        raise UnsupportedMediaType("send the photo as multipart/form-data in a field named 'image'")
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


def _options(parts: List[Part], settings: Settings) -> ToonifyOptions:
    fields = {name: (_values(parts, name) or [""])[0] for name in ToonifyOptions.model_fields}
    fields = {k: v for k, v in fields.items() if v != ""}
    fields.setdefault("steps", str(settings.default_steps))
    try:
        options = ToonifyOptions(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "options"
        raise InvalidOption("%s: %s" % (name, first["msg"])) from None
    if options.steps > settings.max_steps:
        raise InvalidOption("steps: at most %d on this server" % settings.max_steps)
    return options


def _webhook(parts: List[Part], settings: Settings) -> Optional[WebhookRequest]:
    url = (_values(parts, "webhook") or [""])[0]
    names = [name.strip() for value in _values(parts, "webhook_events_filter") for name in value.split(",")
             if name.strip()]
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
    return WebhookRequest(url, frozenset(names or WEBHOOK_EVENTS))


def single_upload(parts: List[Part]) -> bytes:
    uploads = [part.data for part in parts if part.name == "image" and part.is_file]
    if not uploads:
        raise MissingImage("no photo: send it as a file in the multipart field 'image'")
    if len(uploads) > 1:
        raise TooManyFiles("send one photo per request (got %d in 'image')" % len(uploads))
    return uploads[0]


def _method(parts: List[Part]) -> str:
    method = ((_values(parts, "method") or [""])[0].strip().lower()) or "project"
    if method not in METHODS:
        raise InvalidOption("method must be 'project' (faithful, slow) or 'fast' (distilled student)")
    return method


def toonify_request(parts: List[Part], settings: Settings) -> ToonifyRequest:
    upload = single_upload(parts)
    refuse_unknown(parts, known_fields())
    return ToonifyRequest(_options(parts, settings), upload, _webhook(parts, settings), _method(parts))
