"""method=fast over HTTP: answered at once (no job), off the event loop, with its own metrics and a bound on
requests in flight so a burst cannot pile up unbounded threads."""
from __future__ import annotations

import threading
import time

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.responses import Response

from ..config import Settings
from ..encoding import encode_image, extension, media_type
from ..errors import QueueFull, ToonifyError
from ..faces.detect import FaceDetector
from ..fast import FastMode
from ..metrics import STAGE_BUCKETS
from ..options import ToonifyOptions
from .filenames import disposition, download_name, look_parts


class FastService:
    def __init__(self, settings: Settings, registry: CollectorRegistry, detector: FaceDetector) -> None:
        self.mode = FastMode(settings, detector).start()
        self.max_in_flight = max(1, settings.max_queue)
        self._in_flight = 0
        self._lock = threading.Lock()
        self.requests = Counter("toonify_fast_requests_total", "method=fast requests by outcome (ok or error code)",
                                ["outcome"], registry=registry)
        self.seconds = Histogram("toonify_fast_seconds", "Seconds per method=fast request, by stage", ["stage"],
                                 buckets=STAGE_BUCKETS, registry=registry)

    def readiness(self):
        return self.mode.readiness()

    def _run(self, data: bytes, options: ToonifyOptions):
        started = time.perf_counter()
        try:
            result = self.mode.toonify(data, options, lambda stage, s: self.seconds.labels(stage).observe(s))
        except ToonifyError as exc:
            self.requests.labels(exc.code).inc()
            raise
        self.seconds.labels("total").observe(time.perf_counter() - started)
        self.requests.labels("ok").inc()
        return result

    async def respond(self, data: bytes, options: ToonifyOptions) -> Response:
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                self.requests.labels("queue_full").inc()
                raise QueueFull("%d fast requests are already running; try again in 1 s" % self._in_flight,
                                retry_after_s=1)
            self._in_flight += 1
        try:
            result = await run_in_threadpool(self._run, data, options)
        finally:
            with self._lock:
                self._in_flight -= 1
        image = await run_in_threadpool(encode_image, result.image(options.output), options.format)
        shown = options.face if options.face.isdigit() else "0"  # largest, all: the first face, the largest
        where = [] if options.output == "paste" else ["face" + shown]
        parts = where + [options.output] + look_parts(options.output, options.style, options.strength)
        name = download_name("fast", parts, extension(options.format))
        return Response(image, media_type=media_type(options.format),
                        headers=dict(disposition(name, inline=True), **{"X-Toonify-Method": "fast",
                                                                         "X-Toonify-Faces": str(len(result.faces))}))
