"""Result images as the bytes a user downloads: PNG (lossless, the stored form), JPEG or WebP."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

ENCODINGS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
_EXTENSIONS = {"jpeg": "jpg"}  # image formats whose usual extension is not their name


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 92) -> bytes:
    """RGB uint8 → bytes in png, jpeg or webp."""
    return encode_pil(Image.fromarray(np.asarray(rgb, dtype=np.uint8)), fmt, quality)


def encode_pil(image: Image.Image, fmt: str = "png", quality: int = 92) -> bytes:
    """A Pillow image → bytes in png, jpeg or webp: a caller that drops its array once Pillow has its copy
    holds one full-size image while the encoder runs, not two."""
    try:
        pil_format = ENCODINGS[fmt][0]
    except KeyError:
        raise ValueError("format must be one of %s" % ", ".join(ENCODINGS)) from None
    buffer = io.BytesIO()
    options = {"quality": quality} if pil_format in ("JPEG", "WEBP") else {}
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def media_type(fmt: str) -> str:
    return ENCODINGS[fmt][1]


def extension(fmt: str) -> str:
    """The file extension of an image format (png, jpeg, webp) or a file type (zip, npy)."""
    return _EXTENSIONS.get(fmt, fmt)
