"""A loopback webhook receiver for the tests: a real HTTP server that records each delivery."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List


class Receiver:
    """Records each POST (``at``: monotonic, ``wall``: time.time() as a job's finished_at, ``headers``, raw
    ``body``); answers 500 to the first ``fail_first`` of them, 200 after."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: List[Dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"at": time.monotonic(), "wall": time.time(), "headers": dict(self.headers),
                                       "body": body})
                self.send_response(500 if len(receiver.calls) <= fail_first else 200)
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def payloads(self) -> List[Dict[str, Any]]:
        return [json.loads(call["body"]) for call in self.calls]

    def events(self) -> List[str]:
        return [payload["event"] for payload in self.payloads()]

    def wait(self, count: int, timeout_s: float = 60) -> List[Dict[str, Any]]:
        """The calls, once there are ``count`` of them (an assertion error after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.calls) >= count, self.calls
        return self.calls

    def close(self) -> None:
        self.http.shutdown()
