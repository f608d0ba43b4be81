"""Typed errors: one class per kind of answer, so callers branch on the class (or on ``code``) rather than on
status numbers and message text."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type

import httpx


class ToonifyApiError(Exception):
    """Any error answer: ``status`` (HTTP), ``code`` (stable, to branch on), ``message`` (for people)."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: Optional[float] = None) -> None:
        super().__init__("%s (%d %s)" % (message, status, code))
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


class BadRequest(ToonifyApiError):
    """400: empty, damaged, missing or several files."""


class Unauthorized(ToonifyApiError):
    """401: the server needs an API key, or another one."""


class NotFound(ToonifyApiError):
    """404: no such job (or it expired), or no such face."""


class NotFinished(ToonifyApiError):
    """409: the job has not succeeded (yet), or was cancelled."""


class TooLarge(ToonifyApiError):
    """413: too many bytes or pixels."""


class UnsupportedImage(ToonifyApiError):
    """415: not an image the server reads."""


class Unprocessable(ToonifyApiError):
    """422: the photo or the options cannot be used."""


class NoFace(Unprocessable):
    """422 no_face / face_too_small: no usable face in the photo."""


class InvalidOption(Unprocessable):
    """422 invalid_option: an option out of range, or an unknown field."""


class QueueFull(ToonifyApiError):
    """429: retry after ``retry_after_s``."""


class Unavailable(ToonifyApiError):
    """503: still loading, or the queue is unreachable; retry after ``retry_after_s``."""


class ServerError(ToonifyApiError):
    """5xx otherwise (507: storage full), or an event stream that kept dropping (status 0)."""


class NotSupported(ToonifyApiError):
    """Status 0: the client refused before sending, because the server does not advertise the feature (e.g.
    photos by URL); sending it anyway would only earn a 422 about an unknown field."""


BY_CODE: Dict[str, Type[ToonifyApiError]] = {"no_face": NoFace, "face_too_small": NoFace,
                                             "invalid_option": InvalidOption}
BY_STATUS: Dict[int, Type[ToonifyApiError]] = {400: BadRequest, 401: Unauthorized, 404: NotFound, 409: NotFinished,
                                               413: TooLarge, 415: UnsupportedImage, 422: Unprocessable,
                                               429: QueueFull, 503: Unavailable}


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def raise_for_error(response: httpx.Response) -> httpx.Response:
    """The response itself when it succeeded; else the typed error, with the server's code and message."""
    if response.status_code < 400:
        return response
    if not response.is_closed:
        response.read()  # a streamed answer: its body holds the error
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_%d" % response.status_code, response.text[:200] or response.reason_phrase
    kind = BY_CODE.get(code) or BY_STATUS.get(response.status_code, ServerError)
    raise kind(response.status_code, code, message, _retry_after(response))


def job_error(job: Dict[str, Any]) -> ToonifyApiError:
    """The error of a failed job, typed by its code as the synchronous answer would have been."""
    error = job.get("error") or {"code": "internal_error", "message": "the job failed"}
    kind = BY_CODE.get(error["code"], ServerError)
    return kind(422 if issubclass(kind, Unprocessable) else 500, error["code"], error["message"])
