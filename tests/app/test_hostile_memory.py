"""Memory bounded by design: four 49-megapixel uploads at once (lossless WebP, PNG, JPEG — the formats that
cost the most to decode) stay within the decode memory budget, measured as the server process's peak RSS."""
from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.app.server import Server

BUDGET_MB = 1024
SIDE = 7000  # 49 MP, just under the 50-MP limit


def _image(fmt: str, colour) -> bytes:
    buffer = io.BytesIO()
    options = {"WEBP": {"lossless": True, "method": 0}, "PNG": {"compress_level": 1}, "JPEG": {"quality": 80}}[fmt]
    Image.new("RGB", (SIDE, SIDE), colour).save(buffer, fmt, **options)
    return buffer.getvalue()


def _kib(pid: int, field: str) -> int:
    return int(re.search(r"%s:\s+(\d+) kB" % field, Path("/proc/%d/status" % pid).read_text()).group(1))


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-memory")
    srv = Server(engine, tiny_models, root / "data", root / "cache", decode_memory_mb=BUDGET_MB).start()
    yield srv
    srv.stop()


def test_four_49mp_uploads_stay_within_the_decode_budget(server):
    uploads = [("a.webp", _image("WEBP", (200, 10, 10))), ("b.webp", _image("WEBP", (10, 200, 10))),
               ("c.png", _image("PNG", (10, 10, 200))), ("d.jpg", _image("JPEG", (90, 90, 90)))]
    pid = server.process.pid
    Path("/proc/%d/clear_refs" % pid).write_text("5")  # restart the peak-RSS count (VmHWM) from now
    baseline = _kib(pid, "VmRSS")

    def post(upload):
        with server.client() as client:
            return client.post("/toonify", files={"image": upload}, data={"steps": "2"})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, uploads))
    peak_mb = (_kib(pid, "VmHWM") - baseline) / 1024.0
    print("peak RSS above idle for 4 concurrent 49-MP uploads: %.0f MB (budget %d MB)" % (peak_mb, BUDGET_MB))
    assert [r.json()["code"] for r in responses] == ["no_face"] * 4  # decoded, searched, refused cleanly
    assert peak_mb < BUDGET_MB
    assert httpx.get(server.url + "/healthz").status_code == 200
