"""A group photo made of real faces: crops of the repository's photos pasted at several sizes on a large
canvas, with the box of every face, so detection recall can be measured on small faces in big photos."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image

from app.faces.decode import decode_image
from app.faces.detect import FaceDetector
from tests.conftest import PHOTOS

MARGIN = 0.6  # context kept around each face box, as a share of its width
Box = Tuple[int, int, int, int]


def face_crops(detector: FaceDetector) -> List[Tuple[np.ndarray, float]]:
    """(crop with context, face width as a share of the crop width) for every face of the photos."""
    crops = []
    for name in ("obama.jpg", "astronaut.png", "two-faces.jpg"):
        rgb = decode_image((PHOTOS / name).read_bytes())
        for face in detector.detect(rgb):
            left, top, right, bottom = face.rect
            margin = int(face.width * MARGIN)
            crop = rgb[max(0, top - margin): bottom + margin, max(0, left - margin): right + margin]
            crops.append((crop, face.width / crop.shape[1]))
    return crops


def collage(detector: FaceDetector, face_widths: List[int], size=(4000, 3000), seed: int = 0
            ) -> Tuple[np.ndarray, List[Box]]:
    """A canvas of grey noise with one face per requested width (in canvas pixels), left to right in rows."""
    rng = np.random.RandomState(seed)
    canvas = rng.randint(90, 140, size=(size[1], size[0], 3)).astype(np.uint8)
    crops = face_crops(detector)
    boxes, x, y, row_height = [], 40, 40, 0
    for index, width in enumerate(face_widths):
        crop, share = crops[index % len(crops)]
        scale = width / (share * crop.shape[1])
        resized = np.asarray(Image.fromarray(crop).resize(
            (int(round(crop.shape[1] * scale)), int(round(crop.shape[0] * scale))), Image.LANCZOS))
        height, span = resized.shape[:2]
        if x + span > size[0] - 40:
            x, y, row_height = 40, y + row_height + 40, 0
        canvas[y: y + height, x: x + span] = resized
        boxes.append((x, y, x + span, y + height))
        x, row_height = x + span + 40, max(row_height, height)
    return canvas, boxes


def found(boxes: List[Box], rects: List[List[int]]) -> List[bool]:
    """For each pasted face: whether one detection's centre lies inside its crop."""
    centres = [((r[0] + r[2]) / 2, (r[1] + r[3]) / 2) for r in rects]
    return [any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for cx, cy in centres) for b in boxes]


def turned(rgb: np.ndarray, rect: Sequence[int], degrees: float, radius: float = 0.55) -> np.ndarray:
    """The photo with the face in ``rect`` turned by ``degrees`` about a vertical axis: the face is taken as a
    cylinder of ``radius`` box widths around the box's centre line, rotated, and projected back (the far side
    foreshortens, as on a real turned head). Columns whose point turned out of sight are black."""
    centre, span = (rect[0] + rect[2]) / 2.0, radius * (rect[2] - rect[0])
    seen = (np.arange(rgb.shape[1]) - centre) / span
    angle = np.arcsin(np.clip(seen, -1.0, 1.0)) - np.radians(degrees)
    on_cylinder = np.abs(seen) < 1.0
    source = np.where(on_cylinder, centre + span * np.sin(angle), np.arange(rgb.shape[1]))
    out = rgb[:, np.clip(np.rint(source), 0, rgb.shape[1] - 1).astype(int)]
    out[:, on_cylinder & (np.abs(angle) >= np.pi / 2)] = 0
    return out
