"""A small Python client for the Toonify HTTP API (needs ``httpx``)::

    from app.client import Client
    with Client("http://localhost:8000", api_key=None) as toonify:
        png = toonify.toonify("photo.jpg", strength=0.7, output="paste")
        job = toonify.submit("group.jpg", face="all")
        for state in toonify.progress(job["id"]):      # server-sent events, resumed after a dropped connection
            print(state["stage"], state["step"], state["total"], state["eta_s"])
        archive = toonify.result(job["id"], kind="toon", face=1, strength=0.5)

Errors are typed: ``NoFace``, ``InvalidOption``, ``QueueFull`` (``retry_after_s``), ``Unauthorized``,
``NotFound`` …, all ``ToonifyApiError`` with the server's ``code`` and ``message``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Type, Union

import httpx

TERMINAL = ("succeeded", "failed", "cancelled")
PathLike = Union[str, Path]


class ToonifyApiError(Exception):
    """Any error answer: ``status`` (HTTP), ``code`` (stable, to branch on), ``message`` (for people)."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: Optional[float] = None) -> None:
        super().__init__("%s (%d %s)" % (message, status, code))
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


class BadRequest(ToonifyApiError):
    """400: empty, damaged, missing or several files."""


class Unauthorized(ToonifyApiError):
    """401: the server needs an API key."""


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
    """5xx otherwise (507: storage full)."""


BY_CODE: Dict[str, Type[ToonifyApiError]] = {"no_face": NoFace, "face_too_small": NoFace,
                                             "invalid_option": InvalidOption}
BY_STATUS: Dict[int, Type[ToonifyApiError]] = {400: BadRequest, 401: Unauthorized, 404: NotFound, 409: NotFinished,
                                               413: TooLarge, 415: UnsupportedImage, 422: Unprocessable,
                                               429: QueueFull, 503: Unavailable}


def raise_for_error(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_%d" % response.status_code, response.text[:200] or response.reason_phrase
    retry = response.headers.get("retry-after")
    kind = BY_CODE.get(code) or BY_STATUS.get(response.status_code, ServerError)
    raise kind(response.status_code, code, message, float(retry) if retry and retry.isdigit() else None)


def parse_sse(lines: Iterable[str]) -> Iterator[Dict[str, str]]:
    """Server-sent events as dicts with ``event``, ``data`` and ``id`` (when the event has them)."""
    event: Dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data" and "data" in event:
            event["data"] += "\n" + value
        elif name in ("event", "data", "id", "retry"):
            event[name] = value


class Client:
    def __init__(self, base_url: str = "http://localhost:8000", api_key: Optional[str] = None,
                 timeout_s: float = 3600, **httpx_options: Any) -> None:
        headers = {"Authorization": "Bearer %s" % api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, **httpx_options)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _post_photo(self, photo: PathLike, fields: Dict[str, Any], headers: Dict[str, str],
                    params: Optional[Dict[str, str]] = None) -> httpx.Response:
        path = Path(photo)
        data = {name: str(value) for name, value in fields.items() if value is not None}
        files = {"image": (path.name, path.read_bytes(), "application/octet-stream")}
        return raise_for_error(self.http.post("/toonify", files=files, data=data, headers=headers, params=params))

    def toonify(self, photo: PathLike, **options: Any) -> bytes:
        """Wait for the result: an image (face=all with output other than paste: a ZIP of one per face)."""
        return self._post_photo(photo, options, {}).content

    def submit(self, photo: PathLike, idempotency_key: Optional[str] = None, webhook: Optional[str] = None,
               webhook_events: Optional[Iterable[str]] = None, **options: Any) -> Dict[str, Any]:
        """Start a job and return it at once (``status`` queued, or succeeded when cached)."""
        headers = {"Prefer": "respond-async"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        fields = dict(options, webhook=webhook,
                      webhook_events_filter=",".join(webhook_events) if webhook_events else None)
        return self._post_photo(photo, fields, headers).json()

    def job(self, job_id: str) -> Dict[str, Any]:
        return raise_for_error(self.http.get("/jobs/%s" % job_id)).json()

    def jobs(self, page_size: int = 20) -> Iterator[Dict[str, Any]]:
        """The caller's jobs, newest first, across pages."""
        url: Optional[str] = "/jobs?limit=%d" % page_size
        while url:
            page = raise_for_error(self.http.get(url)).json()
            yield from page["jobs"]
            url = page["next"]

    def events(self, job_id: str, last_event_id: Optional[str] = None) -> Iterator[Dict[str, str]]:
        """The raw events of one connection to the job's stream (resuming after ``last_event_id``)."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        with self.http.stream("GET", "/jobs/%s/events" % job_id, headers=headers) as response:
            raise_for_error(response)
            if response.status_code == 204:
                return
            yield from parse_sse(response.iter_lines())

    def progress(self, job_id: str, reconnects: int = 5) -> Iterator[Dict[str, Any]]:
        """The job's states until it ends; a dropped stream is resumed with Last-Event-ID."""
        last_id: Optional[str] = None
        for _ in range(reconnects + 1):
            try:
                for event in self.events(job_id, last_id):
                    last_id = event.get("id", last_id)
                    if event.get("event") == "gone":
                        raise NotFound(404, "not_found", "job %s is gone (deleted or expired)" % job_id)
                    state = json.loads(event["data"])
                    yield state
                    if state["status"] in TERMINAL:
                        return
                return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                time.sleep(1)
        raise ServerError(0, "stream_lost", "the event stream of job %s kept dropping" % job_id)

    def wait(self, job_id: str) -> Dict[str, Any]:
        """The finished job; raises the job's error when it failed."""
        states = list(self.progress(job_id))
        job = states[-1] if states and states[-1]["status"] in TERMINAL else self.job(job_id)
        if job["status"] == "failed":
            error = job["error"] or {"code": "internal_error", "message": "the job failed"}
            kind = BY_CODE.get(error["code"], ToonifyApiError)
            raise kind(422 if kind is not ToonifyApiError else 500, error["code"], error["message"])
        return job

    def result(self, job_id: str, kind: str = "toon", face: int = 0, strength: Optional[float] = None,
               format: str = "png") -> bytes:
        params: Dict[str, Any] = {"kind": kind, "face": face, "format": format}
        if strength is not None:
            params["strength"] = strength
        return raise_for_error(self.http.get("/jobs/%s/result" % job_id, params=params)).content

    def cancel(self, job_id: str) -> Dict[str, Any]:
        return raise_for_error(self.http.delete("/jobs/%s" % job_id)).json()

    def config(self) -> Dict[str, Any]:
        return raise_for_error(self.http.get("/config")).json()


def toonify(photo: PathLike, base_url: str = "http://localhost:8000", api_key: Optional[str] = None,
            **options: Any) -> bytes:
    """One photo, one call: the toon (or what ``output`` asks for) as image bytes."""
    with Client(base_url, api_key) as client:
        return client.toonify(photo, **options)
