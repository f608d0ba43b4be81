"""Peak memory and time of decoding a 49-MP upload, full size (the worker) vs reduced for detection (the API),
per format; each case in its own process, peak RSS from the kernel (VmHWM) above the process's idle RSS.

    python -m bench.decode_memory
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from bench.common import report

SIDE = 7000
FORMATS = {"webp-lossless": ("WEBP", {"lossless": True, "method": 0}), "png": ("PNG", {"compress_level": 1}),
           "jpeg": ("JPEG", {"quality": 90})}


def _kib(field: str) -> int:
    return int(re.search(r"%s:\s+(\d+) kB" % field, Path("/proc/self/status").read_text()).group(1))


def measure(fmt: str, mode: str) -> dict:
    """One decode in this process: its peak RSS above the RSS before it, and its time."""
    from app.faces.decode import decode_image, decode_reduced
    from app.faces.detect import DETECT_SIDE

    pil_format, options = FORMATS[fmt]
    buffer = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (120, 130, 140)).save(buffer, pil_format, **options)
    data = buffer.getvalue()
    Path("/proc/self/clear_refs").write_text("5")
    idle = _kib("VmRSS")
    started = time.perf_counter()
    if mode == "full":
        decode_image(data)
    else:
        decode_reduced(data, DETECT_SIDE)
    return {"format": fmt, "mode": mode, "file_bytes": len(data), "seconds": time.perf_counter() - started,
            "peak_mb": (_kib("VmHWM") - idle) / 1024.0, "bytes_per_pixel": (_kib("VmHWM") - idle) * 1024.0 / SIDE ** 2}


def main() -> None:
    if len(sys.argv) == 3:
        print(json.dumps(measure(sys.argv[1], sys.argv[2])))
        return
    rows = []
    for fmt in FORMATS:
        for mode in ("full", "reduced"):
            out = subprocess.run([sys.executable, "-m", "bench.decode_memory", fmt, mode], capture_output=True,
                                 text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    report("decode_memory", rows, ["format", "mode", "file_bytes", "seconds", "peak_mb", "bytes_per_pixel"])


if __name__ == "__main__":
    main()
