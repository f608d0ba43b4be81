"""Paste-back, the inverse of FFHQ alignment: each square result warped onto its quad in the photo through
a feathered mask. Pure geometry on arrays.

The blend runs a strip of rows at a time, in uint8 between strips: float copies exist only of one strip of one
face's region, never of the photo (a 49-MP photo in float32 is 0.6 GB, and the old whole-image blend held three).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from .align import quad_bounds

FEATHER = 0.08  # share of the aligned side over which paste-back fades in
STRIP_PIXELS = 1 << 19  # pixels blended at once: ~30 MB of float strips whatever the photo's size


def _aligned_to_photo(quad: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Affine (A, t) with photo = A·(u, v) + t for aligned coordinates (u, v) ∈ [0, size] (PIL's +0.5 pixel
    centre convention of the alignment transform included)."""
    top_left, bottom_left, top_right = quad[0], quad[1], quad[3]
    a = np.stack([(top_right - top_left) / size, (bottom_left - top_left) / size], axis=1)
    return a, top_left + 0.5


def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """1 inside, smoothly 0 at the square's edges: hides the seam of a pasted face."""
    ramp = np.minimum(np.arange(size) + 0.5, size - 0.5 - np.arange(size)) / max(feather * size, 1.0)
    ramp = np.clip(ramp, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


def _paste_one(out: np.ndarray, result: np.ndarray, quad: np.ndarray, feather: float) -> None:
    """Blend one result into ``out`` (uint8, in place) over its quad's bounding box, strip by strip."""
    height, width = out.shape[:2]
    left, top, right, bottom = quad_bounds(quad)
    left, top = max(left - 2, 0), max(top - 2, 0)
    right, bottom = min(right + 2, width), min(bottom + 2, height)
    if right <= left or bottom <= top:
        return
    size = result.shape[0]
    a, t = _aligned_to_photo(quad, size)
    inv = np.linalg.inv(a)
    face = Image.fromarray(np.asarray(result, dtype=np.uint8))
    mask = Image.fromarray(feather_mask(size, feather), "F")
    rows = max(1, STRIP_PIXELS // (right - left))
    for first in range(top, bottom, rows):
        last = min(first + rows, bottom)
        offset = inv @ (np.array([left, first], dtype=np.float64) - t)
        data = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
        region = (right - left, last - first)
        warped = np.asarray(face.transform(region, Image.AFFINE, data, Image.BILINEAR), dtype=np.float32)
        m = np.asarray(mask.transform(region, Image.AFFINE, data, Image.BILINEAR), dtype=np.float32)[..., None]
        patch = out[first:last, left:right]
        blended = patch.astype(np.float32) * (1.0 - m) + warped * m
        patch[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def paste_faces(photo: np.ndarray, results: Sequence[np.ndarray], quads: Sequence[np.ndarray],
                feather: float = FEATHER, in_place: bool = False) -> np.ndarray:
    """Warp each square result back onto its quad in the photo, blended through a feathered mask.
    ``in_place``: paste onto ``photo`` itself (RGB uint8), which the caller no longer needs as it was: no
    second full-size copy is made."""
    out = np.asarray(photo)
    if not (in_place and out.dtype == np.uint8 and out.flags.writeable):
        out = np.array(out, dtype=np.uint8)
    for result, quad in zip(results, quads):
        _paste_one(out, result, np.asarray(quad, dtype=np.float64), feather)
    return out
