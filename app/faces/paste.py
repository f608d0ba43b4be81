"""Paste-back, the inverse of FFHQ alignment: each square result warped onto its quad in the photo through
a feathered mask. Pure geometry on arrays."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from .align import quad_bounds

FEATHER = 0.08  # share of the aligned side over which paste-back fades in


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


def paste_faces(photo: np.ndarray, results: Sequence[np.ndarray], quads: Sequence[np.ndarray],
                feather: float = FEATHER) -> np.ndarray:
    """Warp each square result back onto its quad in the photo, blended through a feathered mask."""
    out = np.asarray(photo, dtype=np.float32).copy()
    height, width = out.shape[:2]
    for result, quad in zip(results, quads):
        size = result.shape[0]
        left, top, right, bottom = quad_bounds(np.asarray(quad, dtype=np.float64))
        left, top = max(left - 2, 0), max(top - 2, 0)
        right, bottom = min(right + 2, width), min(bottom + 2, height)
        if right <= left or bottom <= top:
            continue
        a, t = _aligned_to_photo(np.asarray(quad, dtype=np.float64), size)
        inv = np.linalg.inv(a)
        offset = inv @ (np.array([left, top], dtype=np.float64) - t)
        data = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
        region = (right - left, bottom - top)
        warped = Image.fromarray(np.asarray(result, dtype=np.uint8)).transform(region, Image.AFFINE, data,
                                                                               Image.BILINEAR)
        mask = Image.fromarray(feather_mask(size, feather), "F").transform(region, Image.AFFINE, data, Image.BILINEAR)
        m = np.asarray(mask, dtype=np.float32)[..., None]
        patch = out[top:bottom, left:right]
        out[top:bottom, left:right] = patch * (1.0 - m) + np.asarray(warped, dtype=np.float32) * m
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
