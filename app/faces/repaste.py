"""A finished job's photo with its toons pasted back, and a stored result in another format, made for the API
with one full-size image at a time — and what each costs at its peak, from the header alone, so that the API
holds it from the decode budget (app.budget) before it starts, as it does for an upload."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

from ..encoding import encode_pil
from .decode import DECODE_SLACK_BYTES, RGB_BYTES_PER_PIXEL, ImageLimits, decode_cost_bytes, decode_image
from .paste import paste_faces

PILLOW_RGB_BYTES_PER_PIXEL = 4  # Pillow keeps RGB in 4 bytes a pixel
# What an encoder holds beside Pillow's image, per pixel (bench.memory_paths): PNG its output (3 B/px at worst,
# for noise), JPEG its strips and a small output, WebP a packed copy of the pixels, libwebp's own ARGB or YUV
# picture and its output.
ENCODER_BYTES_PER_PIXEL = {"png": 3, "jpeg": 1, "webp": 9}


def _encode_bytes_per_pixel(fmt: str) -> int:
    """From Pillow's copy of the image on: that copy beside the pasted array (which is then let go), then
    beside the encoder's own memory."""
    return PILLOW_RGB_BYTES_PER_PIXEL + max(RGB_BYTES_PER_PIXEL, ENCODER_BYTES_PER_PIXEL[fmt])


def repaste_cost_bytes(photo: bytes, fmt: str, limits: ImageLimits) -> int:
    """What repasted(photo, …, fmt) holds at its peak: the decode, or the encode that follows it."""
    return decode_cost_bytes(photo, None, limits, then_bytes_per_pixel=_encode_bytes_per_pixel(fmt))


def repasted(photo: bytes, toons: Sequence[np.ndarray], quads: Sequence[np.ndarray], fmt: str,
             limits: ImageLimits) -> bytes:
    """The photo decoded, the toons pasted onto it in place, encoded as ``fmt``."""
    rgb = paste_faces(decode_image(photo, limits), toons, quads, in_place=True)
    image = Image.fromarray(rgb)
    del rgb  # the encoder reads Pillow's copy
    return encode_pil(image, fmt)


def reencode_cost_bytes(stored: bytes, fmt: str) -> int:
    """What reencoded(stored, fmt) holds at its peak: the decoded image beside the encoder's memory."""
    width, height = Image.open(io.BytesIO(stored)).size
    return width * height * (PILLOW_RGB_BYTES_PER_PIXEL + ENCODER_BYTES_PER_PIXEL[fmt]) + DECODE_SLACK_BYTES


def reencoded(stored: bytes, fmt: str) -> bytes:
    """One of our own stored PNGs in ``fmt``, straight from Pillow's decoded image (no array copy)."""
    image = Image.open(io.BytesIO(stored))
    image.load()
    return encode_pil(image if image.mode == "RGB" else image.convert("RGB"), fmt)
