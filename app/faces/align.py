"""FFHQ alignment (spec §5, the original ``image_align``). Pure geometry on arrays: no detection, no I/O.

Only the face's region of the photo is copied or resized, never the whole photo (a 49-MP photo is 0.2 GB in
Pillow, and the original shrank all of it): the result is the original's within Lanczos' rounding."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import scipy.ndimage
from PIL import Image

TRANSFORM_SIZE = 4096
EYE_SCALE, MOUTH_SCALE, CENTRE_SHIFT = 2.0, 1.8, 0.1
LANCZOS_SUPPORT = 3.0  # Pillow's Lanczos reaches 3 source pixels (times the scale) either side of a centre


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


def quad_bounds(quad: np.ndarray) -> Tuple[int, int, int, int]:
    return (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
            int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))


def _part_resized(rgb: np.ndarray, size: Tuple[int, int], box: Tuple[int, int, int, int]) -> Image.Image:
    """``box`` of the photo resized (Lanczos) to ``size``, made from only the source pixels the box needs
    (with the filter's reach): the same pixels as resizing the whole photo, then cropping."""
    height, width = rgb.shape[:2]
    sx, sy = width / float(size[0]), height / float(size[1])
    source = (box[0] * sx, box[1] * sy, min(box[2] * sx, width), min(box[3] * sy, height))
    reach_x, reach_y = int(np.ceil(LANCZOS_SUPPORT * sx)) + 2, int(np.ceil(LANCZOS_SUPPORT * sy)) + 2
    window = (max(int(np.floor(source[0])) - reach_x, 0), max(int(np.floor(source[1])) - reach_y, 0),
              min(int(np.ceil(source[2])) + reach_x, width), min(int(np.ceil(source[3])) + reach_y, height))
    part = Image.fromarray(np.ascontiguousarray(rgb[window[1]:window[3], window[0]:window[2]]), "RGB")
    shifted = (source[0] - window[0], source[1] - window[1], source[2] - window[0], source[3] - window[1])
    return part.resize((box[2] - box[0], box[3] - box[1]), Image.LANCZOS, box=shifted)


def _face_region(rgb: np.ndarray, quad: np.ndarray, qsize: float, output_size: int):
    """Shrink and crop (spec §5 steps 3–4) as the original does to the whole photo, made from the face's
    region alone: only that part of the photo is copied or resized. Returns the region as an image, the quad
    and its size in the region's coordinates, and the border."""
    height, width = rgb.shape[:2]
    size = (width, height)
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        size = (int(np.rint(float(width) / shrink)), int(np.rint(float(height) / shrink)))
        quad, qsize = quad / shrink, qsize / shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    left, top, right, bottom = quad_bounds(quad)
    box = (max(left - border, 0), max(top - border, 0), min(right + border, size[0]), min(bottom + border, size[1]))
    if shrink > 1:
        region = _part_resized(rgb, size, box)
    else:
        region = Image.fromarray(np.ascontiguousarray(rgb[box[1]:box[3], box[0]:box[2]]), "RGB")
    return region, quad - np.array(box[0:2], dtype=np.float64), qsize, border


def _padded_channel(channel: np.ndarray, pad, mask: np.ndarray, blur: float) -> np.ndarray:
    """One colour channel reflect-padded, blurred and flattened towards its median where the mask says: the
    original's arithmetic (float32, the same order), one channel at a time so that only channel-sized float
    arrays exist."""
    arr = np.pad(np.float32(channel), ((pad[1], pad[3]), (pad[0], pad[2])), "reflect")
    blurred = scipy.ndimage.gaussian_filter(arr, [blur, blur])
    blurred -= arr
    blurred *= np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += blurred
    del blurred
    flat = np.median(arr) - arr
    flat *= np.clip(mask, 0.0, 1.0)
    arr += flat
    del flat
    return np.uint8(np.clip(np.rint(arr, out=arr), 0, 255, out=arr))


def _pad(img: Image.Image, quad: np.ndarray, qsize: float, border: int):
    """Reflect-pad where the quad leaves the photo, blurring and flattening the padding (spec §5 step 6)."""
    left, top, right, bottom = quad_bounds(quad)
    pad = (max(-left + border, 0), max(-top + border, 0), max(right - img.size[0] + border, 0),
           max(bottom - img.size[1] + border, 0))
    if max(pad) <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
    h, w = img.size[1] + pad[1] + pad[3], img.size[0] + pad[0] + pad[2]
    y, x = np.ogrid[:h, :w]
    mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                      1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
    pixels = np.asarray(img)
    padded = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        padded[..., c] = _padded_channel(pixels[..., c], pad, mask, qsize * 0.02)
    return Image.fromarray(padded, "RGB"), quad + pad[:2]


def align_face(rgb: np.ndarray, landmarks: np.ndarray, output_size: int = 1024,
               transform_size: int = TRANSFORM_SIZE) -> AlignedFace:
    """The FFHQ crop of one face: shrink and crop (the face's region only), reflect-pad, quad transform at
    4096², Lanczos to output."""
    quad_photo = face_quad(landmarks)
    quad = quad_photo.copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # = 2‖x‖
    img, quad, qsize, border = _face_region(np.asarray(rgb, dtype=np.uint8), quad, qsize, output_size)
    img, quad = _pad(img, quad, qsize, border)
    img = img.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.LANCZOS)
    return AlignedFace(np.asarray(img), quad_photo)
