"""Safe decoding of uploads (bytes → RGB uint8). Limits are checked from the header,
before the pixels are decoded; the file's real format decides, never its name or declared content type."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageCms

from ..config import Settings
from ..errors import CorruptImage, EmptyUpload, ImageTooLarge, ImageTooSmall, UnsupportedImage, UploadTooLarge
from .headers import read_header

try:  # HEIC/HEIF support when pillow-heif is installed (it is in both requirement files).
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional at run time
    pass

# We check width×height against our own limit from the header (our own reading of it, then Pillow's), before
# any pixel is decoded, with a message that names both numbers; Pillow's own, vaguer bomb check is therefore off.
Image.MAX_IMAGE_PIXELS = None

ORIENTATION_TAG = 0x0112
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO", "HEIF", "HEIC"})
# What a decode holds at its peak, per pixel (bench/decode_memory.py measures every mode against it): Pillow's
# decoded image (by mode), the decoder's own frame where it keeps one (libwebp's RGBA, libheif's planes), and
# the RGB result, with a copy of it when the EXIF orientation turns it. Conversions run in strips of rows.
STORED_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # others: 4
DECODER_BYTES_PER_PIXEL = {"WEBP": 12, "HEIF": 4, "HEIC": 4}  # libwebp: its canvas, the frame it returns
RGB_BYTES_PER_PIXEL = 3
DECODE_SLACK_BYTES = 32 * 1024 * 1024  # strips, the JPEG/zlib decoders' state, Pillow's small objects
STRIP_PIXELS = 1 << 20
TURNS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
         5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
         7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: a.transpose(1, 0, 2)[::-1]}


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


def _damaged(fmt: str) -> CorruptImage:
    """One answer for every truncated or damaged file, whichever step of decoding finds it."""
    return CorruptImage("the %s file is truncated or damaged — re-export it (or send the original photo) and try "
                        "again" % fmt)


def _check_size(size: Tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageTooLarge("the image is %s (%d×%d); the limit is %s — resize it and try again"
                            % (_megapixels(width * height), width, height, _megapixels(limits.max_pixels)))


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    if not data:
        raise EmptyUpload("the upload is empty — choose a photo file (JPEG, PNG, WebP, HEIC …)")
    if len(data) > limits.max_bytes:
        raise UploadTooLarge("the file is %.1f MB; the limit is %.0f MB — send a smaller or more compressed photo"
                             % (len(data) / 1e6, limits.max_bytes / 1e6))
    header = read_header(data)
    if header is not None and header.size is not None:
        _check_size(header.size, limits)  # before any decoder sees the file
    try:
        image = Image.open(io.BytesIO(data))
    except Exception:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError… for non-images
        if header is not None:
            raise _damaged(header.format) from None
        raise UnsupportedImage("this file is not a photo we can read — send a JPEG, PNG, WebP, HEIC, BMP, TIFF or "
                               "GIF image") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImage("%s images are not accepted — send a JPEG, PNG, WebP, HEIC, BMP, TIFF or GIF photo"
                               % image.format)
    _check_size(image.size, limits)
    width, height = image.size
    if min(width, height) < limits.min_side:
        raise ImageTooSmall("the image is %d×%d pixels; it must be at least %d pixels on each side"
                            % (width, height, limits.min_side))
    return image


class _RgbStrips:
    """Any mode → 8-bit RGB, a strip of rows at a time (so no full-size intermediate exists): 16-bit scaled
    (not clipped) by the whole image's range, float in [0, 1] or [0, 255], alpha composited on white, CMYK via
    its profile."""

    def __init__(self, image: Image.Image) -> None:
        self.image, self.mode = image, image.mode
        self.scale = 1.0
        if self.mode.startswith("I;16"):
            self.scale = 255.0 / 65535.0
        elif self.mode == "I":
            self.scale = 255.0 / 65535.0 if image.getextrema()[1] > 255 else 1.0
        elif self.mode == "F":
            self.scale = 255.0 if image.getextrema()[1] <= 1.0 else 1.0
        self.transform = self._cmyk_transform() if self.mode == "CMYK" else None
        self.rows = max(1, STRIP_PIXELS // max(1, image.size[0]))

    def _cmyk_transform(self) -> Optional[ImageCms.ImageCmsTransform]:
        profile = self.image.info.get("icc_profile")
        if not profile:
            return None
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "CMYK", "RGB")
        except (ImageCms.PyCMSError, OSError):
            return None

    def strip(self, top: int, rows: int) -> Image.Image:
        part = self.image.crop((0, top, self.image.size[0], min(top + rows, self.image.size[1])))
        mode = self.mode
        if mode.startswith("I;16") or mode in ("I", "F"):
            levels = np.asarray(part, dtype=np.float32) * np.float32(self.scale)
            return Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8)).convert("RGB")
        if self.transform is not None:
            return ImageCms.applyTransform(part, self.transform)
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in part.info):
            rgba = part.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        return part.convert("RGB")

    def tops(self, multiple: int = 1) -> range:
        step = max(multiple, self.rows // multiple * multiple)
        return range(0, self.image.size[1], step)

    def full(self) -> np.ndarray:
        width, height = self.image.size
        out = np.empty((height, width, 3), np.uint8)
        for top in self.tops():
            part = np.asarray(self.strip(top, self.rows))
            out[top: top + part.shape[0]] = part
        return out

    def reduced(self, size: Tuple[int, int]) -> np.ndarray:
        """Down to ``size``: each strip box-reduced by an integer factor, then one bilinear resize."""
        factor = max(1, min(self.image.size[0] // size[0], self.image.size[1] // size[1]))
        if factor == 1 and self.mode == "RGB":  # e.g. a JPEG decoded at its DCT scale: no reduced copy needed
            return np.asarray(self.image.resize(size, Image.BILINEAR))
        tops = self.tops(factor)
        reduced = Image.new("RGB", (-(-self.image.size[0] // factor), -(-self.image.size[1] // factor)))
        for top in tops:
            part = self.strip(top, tops.step)
            reduced.paste(part.reduce(factor) if factor > 1 else part, (0, top // factor))
        return np.asarray(reduced.resize(size, Image.BILINEAR))


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 when absent or broken: the photo is then used as stored)."""
    try:
        orientation = image.getexif().get(ORIENTATION_TAG)
    except Exception:
        return 1
    return orientation if isinstance(orientation, int) and orientation in TURNS else 1


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
        strips = _RgbStrips(image)
        if scale < 1.0:
            rgb = strips.reduced((max(1, int(round(width * scale))), max(1, int(round(height * scale)))))
        else:
            rgb = strips.full()
        orientation = _orientation(image)
    except MemoryError:
        raise
    except Exception:  # Pillow's decoders raise OSError, SyntaxError, struct.error, … on damaged files
        raise _damaged(image.format) from None
    del image, strips  # the decoded frame goes before the turned copy is made
    if orientation != 1:
        rgb = np.ascontiguousarray(TURNS[orientation](rgb))
    return rgb, scale


def _jpeg_draft_factor(size: Tuple[int, int], max_side: int) -> int:
    """The largest DCT scaling (1, 2, 4, 8) that keeps the long side at max_side or more."""
    factor = 1
    while factor < 8 and max(size) // (factor * 2) >= max_side:
        factor *= 2
    return factor


def decode_cost_bytes(data: bytes, max_side: Optional[int] = None, limits: Optional[ImageLimits] = None,
                      then_bytes_per_pixel: int = 0) -> int:
    """The memory decode_reduced(data, max_side) (or decode_image, without max_side) will need at its peak,
    from the header alone (which is checked against the limits here, so a bomb is refused before it waits
    for memory). ``then_bytes_per_pixel``: what the caller goes on to hold per pixel of the full-size result
    (a re-paste: the pasted photo, then the encoder's copy of it)."""
    image = _open(data, limits or ImageLimits())
    width, height = image.size
    frame = STORED_BYTES_PER_PIXEL.get(image.mode, 4) + DECODER_BYTES_PER_PIXEL.get(image.format, 0)
    if max_side is None or max(width, height) <= max_side:  # the frame and the RGB copy, then the turned copy
        per_pixel = max(frame + RGB_BYTES_PER_PIXEL, 2 * RGB_BYTES_PER_PIXEL, then_bytes_per_pixel)
        return width * height * per_pixel + DECODE_SLACK_BYTES
    draft = _jpeg_draft_factor(image.size, max_side) if image.format == "JPEG" else 1
    decoded = (-(-width // draft), -(-height // draft))
    scale = max_side / float(max(width, height))
    target = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    box = max(1, min(decoded[0] // target[0], decoded[1] // target[1]))
    canvas = 0 if box == 1 and image.mode == "RGB" else -(-decoded[0] // box) * -(-decoded[1] // box) * 4
    return (decoded[0] * decoded[1] * frame + canvas + target[0] * target[1] * (4 + RGB_BYTES_PER_PIXEL)
            + DECODE_SLACK_BYTES)


def decode_image(data: bytes, limits: Optional[ImageLimits] = None) -> np.ndarray:
    """Upload bytes → RGB uint8 [H, W, 3], upright (EXIF orientation applied), first frame of animations."""
    return _decode(data, limits or ImageLimits(), None)[0]


def decode_reduced(data: bytes, max_side: int, limits: Optional[ImageLimits] = None) -> Tuple[np.ndarray, float]:
    """Like decode_image, but at most ``max_side`` pixels on the long side, and the scale it was reduced by
    (1.0 when it was small enough). JPEGs are decoded at reduced size; other formats are reduced right after
    decoding, so that only one full-size copy ever exists."""
    return _decode(data, limits or ImageLimits(), max_side)
