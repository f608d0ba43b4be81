"""FFHQ alignment (spec §5, the original ``image_align``) and its inverse, paste-back. Pure geometry on
arrays: no detection, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np
import scipy.ndimage
from PIL import Image

TRANSFORM_SIZE = 4096
EYE_SCALE, MOUTH_SCALE, CENTRE_SHIFT = 2.0, 1.8, 0.1
FEATHER = 0.08  # share of the aligned side over which paste-back fades in


@dataclass
class AlignedFace:
    image: np.ndarray  # [S, S, 3] uint8
    quad: np.ndarray  # [4, 2] photo coordinates: top-left, bottom-left, bottom-right, top-right


def _perp(v: np.ndarray) -> np.ndarray:
    return np.array([-v[1], v[0]])


def face_quad(landmarks: np.ndarray) -> np.ndarray:
    """Oriented square around the face from eyes and mouth (spec §5 steps 1–2); [TL, BL, BR, TR]."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - _perp(eye_to_mouth)
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * EYE_SCALE, np.hypot(*eye_to_mouth) * MOUTH_SCALE)
    y = _perp(x)
    c = eye_avg + eye_to_mouth * CENTRE_SHIFT
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _quad_bounds(quad: np.ndarray) -> Tuple[int, int, int, int]:
    return (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
            int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))


def _shrink(img: Image.Image, quad: np.ndarray, qsize: float, output_size: int):
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink <= 1:
        return img, quad, qsize
    size = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
    return img.resize(size, Image.LANCZOS), quad / shrink, qsize / shrink


def _crop(img: Image.Image, quad: np.ndarray, border: int):
    left, top, right, bottom = _quad_bounds(quad)
    crop = (max(left - border, 0), max(top - border, 0),
            min(right + border, img.size[0]), min(bottom + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - np.array(crop[0:2], dtype=np.float64)
    return img, quad


def _pad(img: Image.Image, quad: np.ndarray, qsize: float, border: int):
    """Reflect-pad where the quad leaves the photo, blurring and flattening the padding (spec §5 step 6)."""
    left, top, right, bottom = _quad_bounds(quad)
    pad = (max(-left + border, 0), max(-top + border, 0), max(right - img.size[0] + border, 0),
           max(bottom - img.size[1] + border, 0))
    if max(pad) <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
    arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
    h, w, _ = arr.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                      1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
    blur = qsize * 0.02
    arr += (scipy.ndimage.gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
    return img, quad + pad[:2]


def align_face(rgb: np.ndarray, landmarks: np.ndarray, output_size: int = 1024,
               transform_size: int = TRANSFORM_SIZE) -> AlignedFace:
    """The FFHQ crop of one face: shrink, crop, reflect-pad, quad transform at 4096², Lanczos to output."""
    quad_photo = face_quad(landmarks)
    quad = quad_photo.copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # = 2‖x‖
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB")
    img, quad, qsize = _shrink(img, quad, qsize, output_size)
    border = max(int(np.rint(qsize * 0.1)), 3)
    img, quad = _crop(img, quad, border)
    img, quad = _pad(img, quad, qsize, border)
    img = img.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.LANCZOS)
    return AlignedFace(np.asarray(img), quad_photo)


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
        left, top, right, bottom = _quad_bounds(np.asarray(quad, dtype=np.float64))
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
