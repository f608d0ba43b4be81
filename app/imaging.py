"""Safe decoding of uploads (bytes → RGB uint8) and encoding of results. Limits are checked from the header,
before the pixels are decoded; the file's real format decides, never its name or declared content type."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageCms, ImageOps

from .errors import CorruptImage, EmptyUpload, ImageTooLarge, ImageTooSmall, UnsupportedImage, UploadTooLarge

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
ENCODINGS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 64


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


def decode_image(data: bytes, limits: Optional[ImageLimits] = None) -> np.ndarray:
    """Upload bytes → RGB uint8 [H, W, 3], upright (EXIF orientation applied), first frame of animations."""
    limits = limits or ImageLimits()
    image = _open(data, limits)
    try:
        image.seek(0)
        image.load()
        image = _upright(image)
        rgb = _to_rgb(image)
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, struct.error, … on damaged files
        raise CorruptImage("the image file is damaged or incomplete (%s) — send the original photo again"
                           % str(exc).rstrip(".")) from None
    return np.asarray(rgb, dtype=np.uint8)


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 92) -> bytes:
    """RGB uint8 → bytes in png, jpeg or webp."""
    try:
        pil_format = ENCODINGS[fmt][0]
    except KeyError:
        raise ValueError("format must be one of %s" % ", ".join(ENCODINGS)) from None
    buffer = io.BytesIO()
    options = {"quality": quality} if pil_format in ("JPEG", "WEBP") else {}
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buffer, pil_format, **options)
    return buffer.getvalue()


def media_type(fmt: str) -> str:
    return ENCODINGS[fmt][1]
