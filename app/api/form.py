"""The multipart form of ``POST /toonify`` → validated options, the photo and the webhook request. Unknown
fields are refused by name: a misspelt option (``stenght``) silently ignored is a wrong result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, List, Optional

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from ..config import Settings
from ..pipeline import ToonifyOptions
from .errors import ApiError

WEBHOOK_EVENTS = ("start", "progress", "completed")
OTHER_FIELDS = ("image", "webhook", "webhook_events_filter")


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    events: FrozenSet[str]


@dataclass(frozen=True)
class ToonifyRequest:
    options: ToonifyOptions
    upload: UploadFile
    webhook: Optional[WebhookRequest]


def known_fields() -> List[str]:
    return list(OTHER_FIELDS[:1]) + list(ToonifyOptions.model_fields) + list(OTHER_FIELDS[1:])


def refuse_unknown(form: FormData, known: List[str]) -> None:
    unknown = sorted(set(form.keys()) - set(known))
    if unknown:
        raise ApiError("invalid_option", "unknown field %s; the fields are: %s"
                       % (", ".join("'%s'" % name for name in unknown), ", ".join(known)))


def _options(form: FormData, settings: Settings) -> ToonifyOptions:
    fields = {name: form.get(name) for name in ToonifyOptions.model_fields}
    fields = {k: v for k, v in fields.items() if isinstance(v, str) and v != ""}
    fields.setdefault("steps", str(settings.default_steps))
    try:
        options = ToonifyOptions(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "options"
        raise ApiError("invalid_option", "%s: %s" % (name, first["msg"])) from None
    if options.steps > settings.max_steps:
        raise ApiError("invalid_option", "steps: at most %d on this server" % settings.max_steps)
    return options


def _webhook(form: FormData, settings: Settings) -> Optional[WebhookRequest]:
    url = form.get("webhook")
    names = [part.strip() for value in form.getlist("webhook_events_filter") if isinstance(value, str)
             for part in value.split(",") if part.strip()]
    if not isinstance(url, str) or not url:
        if names:
            raise ApiError("invalid_option", "webhook_events_filter needs a 'webhook' URL")
        return None
    if not settings.webhook_secret:
        raise ApiError("invalid_option", "webhook: this server sends no webhooks (its operator has not set "
                                         "TOONIFY_WEBHOOK_SECRET); follow /jobs/{id}/events instead")
    wrong = [name for name in names if name not in WEBHOOK_EVENTS]
    if wrong:
        raise ApiError("invalid_option", "webhook_events_filter: %s is not one of %s"
                       % (", ".join(wrong), ", ".join(WEBHOOK_EVENTS)))
    return WebhookRequest(url, frozenset(names or WEBHOOK_EVENTS))


def single_upload(form: FormData) -> UploadFile:
    uploads = [item for item in form.getlist("image") if hasattr(item, "read")]
    if not uploads:
        raise ApiError("missing_image", "no photo: send it as a file in the multipart field 'image'")
    if len(uploads) > 1:
        raise ApiError("too_many_files", "send one photo per request (got %d in 'image')" % len(uploads))
    return uploads[0]


def parse_form(form: FormData, settings: Settings) -> ToonifyRequest:
    upload = single_upload(form)
    refuse_unknown(form, known_fields())
    return ToonifyRequest(_options(form, settings), upload, _webhook(form, settings))
