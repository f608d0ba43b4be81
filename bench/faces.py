"""Decode + detect + align time for a 12-MP photo (obama.jpg upscaled) and for astronaut.png.

    python -m bench.faces [--repeats 5]
"""
from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from app.align import align_face
from app.faces import FaceDetector
from app.imaging import decode_image
from bench.common import median_seconds, report
from tests.conftest import PHOTOS


def twelve_megapixel_jpeg() -> bytes:
    photo = Image.open(str(PHOTOS / "obama.jpg")).convert("RGB")
    big = photo.resize((3100, 3876), Image.LANCZOS)  # 12.0 MP
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    detector = FaceDetector()
    inputs = {"obama-12MP.jpg": twelve_megapixel_jpeg(), "astronaut.png": (PHOTOS / "astronaut.png").read_bytes()}
    rows = []
    for name, data in inputs.items():
        stages = {}

        def pipeline(data=data, stages=stages):
            t0 = time.perf_counter()
            rgb = decode_image(data)
            t1 = time.perf_counter()
            faces = detector.usable_faces(rgb)
            t2 = time.perf_counter()
            align_face(rgb, faces[0].landmarks)
            t3 = time.perf_counter()
            stages.update(decode_s=t1 - t0, detect_s=t2 - t1, align_s=t3 - t2)

        timing = median_seconds(pipeline, args.repeats)
        rows.append(dict(photo=name, **stages, total_median_s=timing["median_s"], repeats=args.repeats))
    report("faces", rows, ["photo", "decode_s", "detect_s", "align_s", "total_median_s", "repeats"])


if __name__ == "__main__":
    main()
