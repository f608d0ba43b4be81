"""Decode + detect + align time for a 12-MP photo (obama.jpg upscaled), astronaut.png, and a 12-MP group
photo made of real faces at 60–450 px (tests/app/collage.py), with how many of its faces were found.

    python -m bench.faces [--repeats 5]
"""
from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from app.faces.align import align_face
from app.faces.decode import decode_image
from app.faces.detect import FaceDetector
from bench.common import median_seconds, report
from tests.app.collage import collage, found
from tests.conftest import PHOTOS

GROUP_FACE_WIDTHS = [60, 70, 85, 100, 120, 150, 200, 300, 450]


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
    group, boxes = collage(detector, GROUP_FACE_WIDTHS, size=(4000, 3000))
    buffer = io.BytesIO()
    Image.fromarray(group).save(buffer, "JPEG", quality=92)
    inputs = {"obama-12MP.jpg": twelve_megapixel_jpeg(), "astronaut.png": (PHOTOS / "astronaut.png").read_bytes(),
              "group-12MP.jpg": buffer.getvalue()}
    rows = []
    for name, data in inputs.items():
        stages = {}

        def pipeline(data=data, stages=stages, name=name):
            t0 = time.perf_counter()
            rgb = decode_image(data)
            t1 = time.perf_counter()
            faces = detector.usable_faces(rgb)
            t2 = time.perf_counter()
            align_face(rgb, faces[0].landmarks)
            t3 = time.perf_counter()
            stages.update(decode_s=t1 - t0, detect_s=t2 - t1, align_s=t3 - t2, faces=len(faces))
            if name.startswith("group"):
                stages["faces"] = "%d of %d" % (sum(found(boxes, [f.rect for f in faces])), len(boxes))

        timing = median_seconds(pipeline, args.repeats)
        rows.append(dict(photo=name, **stages, total_median_s=timing["median_s"], repeats=args.repeats))
    report("faces", rows, ["photo", "faces", "decode_s", "detect_s", "align_s", "total_median_s", "repeats"])


if __name__ == "__main__":
    main()
