"""The Toonify HTTP API as Python methods (httpx, synchronous). Photos go up as multipart; results come back as
the image's bytes; jobs are the API's JSON views (dicts), so new fields reach callers without a client release."""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, Iterator, Optional

import httpx

from .errors import NotFinished, NotFound, NotSupported, ServerError, Unavailable, job_error, raise_for_error
from .openapi import URL_FIELD, form_fields
from .photos import Photo, read_photo
from .sse import parse_sse

TERMINAL = ("succeeded", "failed", "cancelled")
Job = Dict[str, Any]


def _fields(options: Dict[str, Any]) -> Dict[str, str]:
    """Form or query fields: ``None`` means "the server's default" and is left out."""
    return {name: str(value) for name, value in options.items() if value is not None}


def _state(job_id: str, event: Dict[str, str]) -> Optional[Job]:
    """The job's state an event carries; ``None`` for kinds this client does not interpret (previews …)."""
    if event.get("event") == "gone":
        raise NotFound(404, "not_found", "job %s is gone (deleted or expired)" % job_id)
    if event.get("event", "job") != "job":
        return None
    return json.loads(event["data"])


class Client:
    """One connection pool to one server; use it as a context manager (or call ``close()``)."""

    def __init__(self, base_url: str = "http://localhost:8000", api_key: Optional[str] = None,
                 timeout_s: float = 3600, **httpx_options: Any) -> None:
        headers = {"Authorization": "Bearer %s" % api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, **httpx_options)
        self._takes_urls: Optional[bool] = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def accepts_urls(self) -> bool:
        """Whether the server takes a photo by URL (its OpenAPI form has ``image_url``); asked once."""
        if self._takes_urls is None:
            spec = raise_for_error(self.http.get("/openapi.json")).json()
            self._takes_urls = URL_FIELD in form_fields(spec)
        return self._takes_urls

    def _upload(self, photo: Optional[Photo], url: Optional[str]) -> Dict[str, Any]:
        """The multipart file part: the photo, or the URL as a plain field when the server takes URLs."""
        if (photo is None) == (url is None):
            raise ValueError("give a photo or url=, not both and not neither")
        if url is None:
            name, data = read_photo(photo)  # type: ignore[arg-type]
            return {"image": (name, data, "application/octet-stream")}
        if not self.accepts_urls():
            raise NotSupported(0, "url_not_supported", "this server does not take photos by URL (its API has no "
                               "'%s' field): download the photo and send the file" % URL_FIELD)
        return {URL_FIELD: (None, url.encode())}

    def _create(self, photo: Optional[Photo], url: Optional[str], fields: Dict[str, Any],
                headers: Dict[str, str]) -> httpx.Response:
        files = self._upload(photo, url)
        return raise_for_error(self.http.post("/toonify", files=files, data=_fields(fields), headers=headers))

    def toonify(self, photo: Optional[Photo] = None, url: Optional[str] = None, **options: Any) -> bytes:
        """Wait for the result: the image's bytes (face="all" with an output other than paste: a ZIP of one
        image per face). ``options`` are the form's fields: face, steps, seed, strength, output, format, style…"""
        return self._create(photo, url, options, {}).content

    def submit(self, photo: Optional[Photo] = None, url: Optional[str] = None, idempotency_key: Optional[str] = None,
               webhook: Optional[str] = None, **options: Any) -> Job:
        """Start a job and return it at once (``status`` queued, or succeeded when the server had it cached).
        ``webhook_events_filter`` may be a list of event names."""
        headers = {"Prefer": "respond-async"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        events = options.get("webhook_events_filter")
        if events is not None and not isinstance(events, str):
            options["webhook_events_filter"] = ",".join(events)
        return self._create(photo, url, dict(options, webhook=webhook), headers).json()

    def faces(self, photo: Photo) -> Dict[str, Any]:
        """The usable faces, largest first: ``{"width", "height", "faces": [{"index", "rect", "score"}]}``;
        no job is made. Pick one with ``face=<index>``."""
        name, data = read_photo(photo)
        files = {"image": (name, data, "application/octet-stream")}
        return raise_for_error(self.http.post("/faces", files=files)).json()

    def job(self, job_id: str) -> Job:
        return raise_for_error(self.http.get("/jobs/%s" % job_id)).json()

    def jobs(self, page_size: int = 20) -> Iterator[Job]:
        """The caller's jobs, newest first, across pages."""
        url: Optional[str] = "/jobs?limit=%d" % page_size
        while url:
            page = raise_for_error(self.http.get(url)).json()
            yield from page["jobs"]
            url = page["next"]

    def events(self, job_id: str, last_event_id: Optional[str] = None) -> Iterator[Dict[str, str]]:
        """The raw events of one connection to the job's stream (after ``last_event_id``): ``job`` states, and
        any other kind the server sends (they are passed on, not interpreted)."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        with self.http.stream("GET", "/jobs/%s/events" % job_id, headers=headers) as response:
            raise_for_error(response)
            if response.status_code == 204:  # a finished job whose last state this client has seen
                return
            yield from parse_sse(response.iter_lines())

    def progress(self, job_id: str, patience_s: float = 300) -> Iterator[Job]:
        """The job's states until it ends. A dropped or closed stream (a network blip, a server restart) is
        resumed with Last-Event-ID, backing off up to 5 s, until the server has been unreachable ``patience_s``."""
        last_id: Optional[str] = None
        down_since: Optional[float] = None
        pause = 0.5
        while True:
            try:
                for event in self.events(job_id, last_id):
                    last_id, down_since, pause = event.get("id", last_id), None, 0.5
                    state = _state(job_id, event)
                    if state is not None:
                        yield state
                        if state["status"] in TERMINAL:
                            return
            except (httpx.TransportError, Unavailable):
                pass  # resumed below, after the last event seen
            down_since = time.monotonic() if down_since is None else down_since
            if time.monotonic() - down_since > patience_s:
                raise ServerError(0, "stream_lost", "the event stream of job %s has been gone for %d s"
                                  % (job_id, patience_s))
            time.sleep(pause)
            pause = min(2 * pause, 5.0)

    def wait(self, job_id: str, on_state: Optional[Callable[[Job], None]] = None) -> Job:
        """The finished job (each state passed to ``on_state`` on the way); raises the job's error when it
        failed, ``NotFinished`` when it was cancelled."""
        job: Optional[Job] = None
        for job in self.progress(job_id):
            if on_state is not None:
                on_state(job)
        if job is None or job["status"] not in TERMINAL:
            job = self.job(job_id)
        if job["status"] == "failed":
            raise job_error(job)
        if job["status"] == "cancelled":
            raise NotFinished(409, "cancelled", "job %s was cancelled" % job_id)
        return job

    def result(self, job_id: str, kind: str = "toon", face: int = 0, **render: Any) -> bytes:
        """A finished job's image: kind toon, paste, aligned or reconstruction; ``render``: strength, format,
        style… (left out: the job's own)."""
        params = _fields(dict(render, kind=kind, face=face))
        return raise_for_error(self.http.get("/jobs/%s/result" % job_id, params=params)).content

    def render(self, job_id: str, strength: float, face: int = 0, **render: Any) -> bytes:
        """Re-render a face from its saved latents (seconds, no projection): ``render``: style, format…"""
        params = _fields(dict(render, strength=strength, face=face))
        return raise_for_error(self.http.post("/jobs/%s/render" % job_id, params=params)).content

    def cancel(self, job_id: str) -> Job:
        """Cancel a running job (within one projection step), or delete a finished one and its files."""
        return raise_for_error(self.http.delete("/jobs/%s" % job_id)).json()

    def config(self) -> Dict[str, Any]:
        """The server's defaults, limits and features (test models? API keys? webhooks?)."""
        return raise_for_error(self.http.get("/config")).json()


def toonify(photo: Photo, base_url: str = "http://localhost:8000", api_key: Optional[str] = None,
            **options: Any) -> bytes:
    """One photo, one call: the toon (or what ``output`` asks for) as image bytes."""
    with Client(base_url, api_key) as client:
        return client.toonify(photo, **options)
