"""Safe decoding of uploads (bytes → RGB uint8). Limits are checked from the header,
before the pixels are decoded; the file's real format decides, never its name or declared content type."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageCms, ImageOps

from ..config import Settings
from ..errors import CorruptImage, EmptyUpload, ImageTooLarge, ImageTooSmall, UnsupportedImage, UploadTooLarge

try:  # HEIC/HEIF support when pillow-heif is installed (it is in both requirement files).
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional at run time
    pass

# We check width×height against our own limit right after reading the header (before any pixel is
# decoded), with a message that names both numbers; Pillow's own, vaguer bomb check is therefore off.
Image.MAX_IMAGE_PIXELS = None

ORIENTATION_TAG = 0x0112
TRANSPOSE_BY_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                            8: Image.Transpose.ROTATE_90}
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO", "HEIF", "HEIC"})
REDUCIBLE_MODES = ("RGB", "RGBA", "L", "LA")
# Peak bytes per decoded pixel, measured on 49-MP images (bench/RESULTS.md, "Hostile traffic"): lossless WebP
# 15 (Pillow decodes to RGBA, then copies), PNG 7.6 when reduced; JPEG decodes at 1/2…1/8 scale when reduced.
DECODE_BYTES_PER_PIXEL = 16


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> "ImageLimits":
        return cls(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)


def _megapixels(pixels: int) -> str:
    return "%.0f MP" % (pixels / 1e6) if pixels >= 1e6 else "%.1f MP" % (pixels / 1e6)


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    if not data:
        raise EmptyUpload("the upload is empty — choose a photo file (JPEG, PNG, WebP, HEIC …)")
    if len(data) > limits.max_bytes:
        raise UploadTooLarge("the file is %.1f MB; the limit is %.0f MB — send a smaller or more compressed photo"
                             % (len(data) / 1e6, limits.max_bytes / 1e6))
    try:
        image = Image.open(io.BytesIO(data))
    except Exception:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError… for non-images
        raise UnsupportedImage("this file is not a photo we can read — send a JPEG, PNG, WebP, HEIC, BMP, TIFF or "
                               "GIF image") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImage("%s images are not accepted — send a JPEG, PNG, WebP, HEIC, BMP, TIFF or GIF photo"
                               % image.format)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge("the image is %s (%d×%d); the limit is %s — resize it and try again"
                            % (_megapixels(width * height), width, height, _megapixels(limits.max_pixels)))
    if min(width, height) < limits.min_side:
        raise ImageTooSmall("the image is %d×%d pixels; it must be at least %d pixels on each side"
                            % (width, height, limits.min_side))
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode → 8-bit RGB: 16-bit scaled (not clipped), alpha composited on white, CMYK via its profile."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 or mode.startswith("I;16") else 255.0
        return Image.fromarray(np.clip(np.rint(array * (255.0 / peak)), 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "CMYK":
        profile = image.info.get("icc_profile")
        if profile:
            try:
                source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
                return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            except (ImageCms.PyCMSError, OSError):
                pass
        return image.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """EXIF orientation applied. Pillow's exif_transpose rewrites the whole EXIF block and raises on a tag
    it cannot re-encode (e.g. a RATIONAL-typed width); then the orientation tag alone is read, and a broken
    one is ignored: the photo is used as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        pass
    try:
        orientation = image.getexif().get(ORIENTATION_TAG)
    except Exception:
        return image
    method = TRANSPOSE_BY_ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(method) if method is not None else image


def _shrink(image: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """Down to ``size``: a cheap integer box reduction first, then one bilinear resize to the exact size."""
    if image.mode not in REDUCIBLE_MODES:
        image = _to_rgb(image)
    factor = min(image.size[0] // size[0], image.size[1] // size[1])
    if factor >= 2:
        image = image.reduce(factor)
    return image.resize(size, Image.BILINEAR)


def _decode(data: bytes, limits: ImageLimits, max_side: Optional[int]) -> Tuple[np.ndarray, float]:
    image = _open(data, limits)
    scale = 1.0
    try:
        image.seek(0)
        width, height = image.size
        if max_side and max(width, height) > max_side:
            scale = max_side / float(max(width, height))
            if image.format == "JPEG":  # the decoder itself scales by 1/2, 1/4 or 1/8: never the full pixels
                image.draft(None, (int(math.ceil(width * scale)), int(math.ceil(height * scale))))
        image.load()
        stored = image.size
        image = _upright(image)
        if image.size != stored:  # rotated by its EXIF orientation
            width, height = height, width
        if scale < 1.0:
            image = _shrink(image, (max(1, int(round(width * scale))), max(1, int(round(height * scale)))))
        rgb = _to_rgb(image)
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, struct.error, … on damaged files
        raise CorruptImage("the image file is damaged or incomplete (%s) — send the original photo again"
                           % str(exc).rstrip(".")) from None
    return np.asarray(rgb, dtype=np.uint8), scale


def decode_cost_bytes(data: bytes, max_side: int, limits: Optional[ImageLimits] = None) -> int:
    """The memory decode_reduced(data, max_side) will need at its peak, from the header alone (which is
    checked against the limits here, so a bomb is refused before it waits for memory)."""
    image = _open(data, limits or ImageLimits())
    width, height = image.size
    factor = 1
    if image.format == "JPEG":  # the largest DCT scaling that keeps the long side at max_side or more
        while factor < 8 and max(width, height) // (factor * 2) >= max_side:
            factor *= 2
    return (width // factor + 1) * (height // factor + 1) * DECODE_BYTES_PER_PIXEL


def decode_image(data: bytes, limits: Optional[ImageLimits] = None) -> np.ndarray:
    """Upload bytes → RGB uint8 [H, W, 3], upright (EXIF orientation applied), first frame of animations."""
    return _decode(data, limits or ImageLimits(), None)[0]


def decode_reduced(data: bytes, max_side: int, limits: Optional[ImageLimits] = None) -> Tuple[np.ndarray, float]:
    """Like decode_image, but at most ``max_side`` pixels on the long side, and the scale it was reduced by
    (1.0 when it was small enough). JPEGs are decoded at reduced size; other formats are reduced right after
    decoding, so that only one full-size copy ever exists."""
    return _decode(data, limits or ImageLimits(), max_side)
