"""Reduced decoding for detection: a large photo is decoded at ≤ 1400 px (upright, every format), its faces are
found there, and placed back on the full-resolution photo as precisely as detecting on the full photo does."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.admission import scale_face
from app.faces.decode import decode_cost_bytes, decode_image, decode_reduced
from app.faces.detect import DETECT_SIDE, FaceDetector
from tests.conftest import PHOTOS

ORIENTATION = 0x0112


def _large(fmt: str, orientation: int = 1) -> bytes:
    """obama.jpg at 3600×4500 (16 MP), stored rotated with an EXIF orientation that puts it upright."""
    photo = Image.open(str(PHOTOS / "obama.jpg")).convert("RGB").resize((3600, 4500), Image.BICUBIC)
    stored = photo.transpose(Image.ROTATE_90) if orientation == 6 else photo  # 6: turn 270° to view upright
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, fmt, exif=exif.tobytes(), **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.mark.parametrize("fmt, orientation", [("JPEG", 1), ("JPEG", 6), ("PNG", 6), ("WEBP", 1)])
def test_reduced_decode_is_upright_and_matches_the_full_one(fmt, orientation):
    data = _large(fmt, orientation)
    full = decode_image(data)
    reduced, scale = decode_reduced(data, DETECT_SIDE)
    assert full.shape == (4500, 3600, 3)
    side = (DETECT_SIDE, DETECT_SIDE * 4 // 5)  # the photo is 4500 × 3600 (5:4)
    assert reduced.shape == side + (3,) and scale == pytest.approx(DETECT_SIDE / 4500)
    shrunk = np.asarray(Image.fromarray(full).resize(side[::-1], Image.BILINEAR), dtype=np.float32)
    assert np.abs(shrunk - reduced).mean() < 3.0  # same picture, same way up (a rotation would differ by ~40)
    full_cost, cost = decode_cost_bytes(data), decode_cost_bytes(data, DETECT_SIDE)
    frame = 3600 * 4500 * 4  # the full-size decoded frame: a JPEG never holds it (DCT scaling), the others do
    assert cost < full_cost / 2 if fmt == "JPEG" else frame <= cost < full_cost


def test_small_photos_are_not_reduced():
    data = (PHOTOS / "astronaut.png").read_bytes()
    reduced, scale = decode_reduced(data, DETECT_SIDE)
    assert scale == 1.0 and np.array_equal(reduced, decode_image(data))


def test_faces_found_on_the_reduced_copy_land_where_full_detection_puts_them(detector):
    data = _large("JPEG", 6)
    full = decode_image(data)
    [expected] = detector.usable_faces(full)
    reduced, scale = decode_reduced(data, DETECT_SIDE)
    [found] = [scale_face(face, scale) for face in detector.usable_faces(reduced)]
    assert np.abs(np.subtract(found.rect, expected.rect)).max() <= 0.02 * expected.width
    placed = detector.landmarks(full, found.rect)  # what the worker does before aligning
    assert np.abs(placed - expected.landmarks).max() <= 0.01 * expected.width
