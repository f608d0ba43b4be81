"""Peak memory and time of decoding a 49-MP upload per format and pixel mode, full size (the worker) and reduced
for detection (the API), beside what app.faces.decode charges for it (decode_cost_bytes). Each case runs in its
own process on a file written beforehand: peak RSS from the kernel (VmHWM) above the process's RSS just before.

``--paths``: the same for what is done to a whole 49-MP photo after its upload (bench.memory_paths): the worker's
decode → landmarks → align → paste → PNG (no GAN), and the API's re-paste and re-encodes, beside their charge.

    python -m bench.decode_memory [MODE ...]
    python -m bench.decode_memory --paths
"""
from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Dict

import numpy as np
from PIL import Image

from bench.common import report

SIDE = 7000
MB = 1 << 20


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_rgb16() -> bytes:
    """16-bit RGB PNG, written by hand (Pillow cannot write one)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + b"\x80\x00\x40\x00\x20\x00" * SIDE
    rows = zlib.compressobj(1)
    body = b"".join(rows.compress(row) for _ in range(SIDE)) + rows.flush()
    ihdr = struct.pack(">IIBBBBB", SIDE, SIDE, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _turned_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90° to view upright
    return _saved(_rgb(), "JPEG", quality=90, exif=exif.tobytes())


def _heic() -> bytes:
    from pillow_heif import from_pillow

    buffer = io.BytesIO()
    from_pillow(_rgb()).save(buffer, quality=30)
    return buffer.getvalue()


def _grey16() -> Image.Image:
    return Image.fromarray(np.full((SIDE, SIDE), 40000, np.uint16))


def _rgb(mode: str = "RGB") -> Image.Image:
    return Image.new("RGB", (SIDE, SIDE), (120, 130, 140)).convert(mode)


DEFLATE = {"compression": "tiff_adobe_deflate"}
MODES: Dict[str, Callable[[], bytes]] = {
    "jpeg-rgb": lambda: _saved(_rgb(), "JPEG", quality=90),
    "jpeg-rgb-turned": _turned_jpeg,
    "jpeg-grey": lambda: _saved(_rgb("L"), "JPEG", quality=90),
    "jpeg-cmyk": lambda: _saved(_rgb("CMYK"), "JPEG", quality=90),
    "png-rgb8": lambda: _saved(_rgb(), "PNG", compress_level=1),
    "png-rgba8": lambda: _saved(_rgb("RGBA"), "PNG", compress_level=1),
    "png-grey8": lambda: _saved(_rgb("L"), "PNG", compress_level=1),
    "png-grey-alpha8": lambda: _saved(_rgb("LA"), "PNG", compress_level=1),
    "png-palette": lambda: _saved(_rgb("P"), "PNG", compress_level=1),
    "png-palette-transparent": lambda: _saved(_rgb("P"), "PNG", compress_level=1, transparency=0),
    "png-1bit": lambda: _saved(_rgb("1"), "PNG", compress_level=1),
    "png-grey16": lambda: _saved(_grey16(), "PNG", compress_level=1),
    "png-rgb16": _png_rgb16,
    "webp-lossless": lambda: _saved(_rgb(), "WEBP", lossless=True, method=0),
    "webp-lossy": lambda: _saved(_rgb(), "WEBP", quality=80, method=0),
    "gif": lambda: _saved(_rgb("P"), "GIF"),
    "bmp-1bit": lambda: _saved(_rgb("1"), "BMP"),
    "heic": _heic,
    "tiff-rgb8": lambda: _saved(_rgb(), "TIFF", **DEFLATE),
    "tiff-cmyk": lambda: _saved(_rgb("CMYK"), "TIFF", **DEFLATE),
    "tiff-grey16": lambda: _saved(_grey16(), "TIFF", **DEFLATE),
    "tiff-int32": lambda: _saved(Image.fromarray(np.full((SIDE, SIDE), 70000, np.int32)), "TIFF", **DEFLATE),
    "tiff-float32": lambda: _saved(Image.fromarray(np.full((SIDE, SIDE), 0.5, np.float32)), "TIFF", **DEFLATE),
}


def _kib(field: str) -> int:
    return int(re.search(r"%s:\s+(\d+) kB" % field, Path("/proc/self/status").read_text()).group(1))


def peak_above_idle(work: Callable[[], object]) -> Dict[str, float]:
    """Run ``work`` in this process: its peak RSS above the RSS just before (MB), and its time."""
    Path("/proc/self/clear_refs").write_text("5")
    idle = _kib("VmRSS")
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": (_kib("VmHWM") - idle) / 1024.0}


def measure(path: Path, how: str) -> dict:
    """One decode of the file at ``path`` in this process: its peak RSS above the RSS before it, and its time."""
    from app.faces.decode import decode_cost_bytes, decode_image, decode_reduced
    from app.faces.detect import DETECT_SIDE

    data = path.read_bytes()
    charged = decode_cost_bytes(data, DETECT_SIDE if how == "reduced" else None)
    if how == "full":
        row = peak_above_idle(lambda: decode_image(data))
    else:
        row = peak_above_idle(lambda: decode_reduced(data, DETECT_SIDE))
    peak = row["peak_mb"] * MB
    return dict(row, mode=path.stem, decode=how, file_mb=len(data) / MB, peak_b_per_px=peak / SIDE ** 2,
                charged_mb=charged / MB, within=peak <= charged)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[2] in ("full", "reduced"):
        print(json.dumps(measure(Path(sys.argv[1]), sys.argv[2])))
        return
    if sys.argv[1:2] == ["--paths"]:
        from bench.memory_paths import main as paths

        paths(sys.argv[2:])
        return
    names = sys.argv[1:] or list(MODES)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            path = Path(folder) / name
            path.write_bytes(MODES[name]())
            for how in ("full", "reduced"):
                out = subprocess.run([sys.executable, "-m", "bench.decode_memory", str(path), how],
                                     capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    report("decode_memory", rows, ["mode", "decode", "file_mb", "seconds", "peak_mb", "peak_b_per_px", "charged_mb",
                                   "within"])


if __name__ == "__main__":
    main()
