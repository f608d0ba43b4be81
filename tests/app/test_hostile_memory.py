"""Memory bounded by design: four 49-megapixel uploads at once (lossless WebP, PNG, JPEG — the formats that
cost the most to decode — and the high-bit-depth modes: 16-bit grey PNG, 32-bit float TIFF) stay within the decode
memory budget, measured as the server process's peak RSS above its idle RSS in the same test."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.rss import PeakRss
from tests.app.server import Server

BUDGET_MB = 1024
SIDE = 7000  # 49 MP, just under the 50-MP limit


def _image(fmt: str, colour) -> bytes:
    buffer = io.BytesIO()
    options = {"WEBP": {"lossless": True, "method": 0}, "PNG": {"compress_level": 1}, "JPEG": {"quality": 80}}[fmt]
    Image.new("RGB", (SIDE, SIDE), colour).save(buffer, fmt, **options)
    return buffer.getvalue()


def _high_bit_depth(fmt: str, level: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "PNG":
        Image.fromarray(np.full((SIDE, SIDE), level * 200, np.uint16)).save(buffer, "PNG", compress_level=1)
    else:
        pixels = np.full((SIDE, SIDE), level / 300.0, np.float32)
        Image.fromarray(pixels).save(buffer, "TIFF", compression="tiff_adobe_deflate")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-memory")
    srv = Server(engine, tiny_models, root / "data", root / "cache", decode_memory_mb=BUDGET_MB).start()
    yield srv
    srv.stop()


def _peak_mb_of_four(server, uploads) -> float:
    def post(upload):
        with server.client() as client:
            return client.post("/toonify", files={"image": upload}, data={"steps": "2"})

    with PeakRss(server.process.pid) as rss, ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, uploads))
    peak_mb = rss.peak_mb
    print("peak RSS above idle for 4 concurrent 49-MP uploads (%s): %.0f MB (budget %d MB)"
          % (", ".join(name for name, _ in uploads), peak_mb, BUDGET_MB))
    assert [r.json()["code"] for r in responses] == ["no_face"] * 4  # decoded, searched, refused cleanly
    assert httpx.get(server.url + "/healthz").status_code == 200
    return peak_mb


def test_four_49mp_uploads_stay_within_the_decode_budget(server):
    uploads = [("a.webp", _image("WEBP", (200, 10, 10))), ("b.webp", _image("WEBP", (10, 200, 10))),
               ("c.png", _image("PNG", (10, 10, 200))), ("d.jpg", _image("JPEG", (90, 90, 90)))]
    assert _peak_mb_of_four(server, uploads) < BUDGET_MB


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_four_high_bit_depth_49mp_uploads_stay_within_the_decode_budget(server, fmt):
    """16-bit grey PNGs and float TIFFs: each cost 1.3 GB to decode when they were converted in one piece."""
    uploads = [("%d.%s" % (i, fmt.lower()), _high_bit_depth(fmt, 100 + i)) for i in range(4)]
    assert _peak_mb_of_four(server, uploads) < BUDGET_MB
