"""The hostile-upload corpus, made in code: each entry is (name, bytes, expected error code or None)."""
from __future__ import annotations

import io
import struct
import uuid
import zlib
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from tests.conftest import PHOTOS


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height: decompresses to far more than it weighs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def multipart_body(fields: Dict[str, str], photo: bytes) -> Tuple[bytes, str]:
    """A form with the option ``fields`` and the photo as ``image``, written by hand (for raw sockets); the body
    and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary.encode(), k.encode(),
                                                                                   v.encode())
             for k, v in fields.items()]
    parts.append(b'--%s\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
                 b"Content-Type: image/jpeg\r\n\r\n%s\r\n--%s--\r\n" % (boundary.encode(), photo, boundary.encode()))
    return b"".join(parts), "multipart/form-data; boundary=" + boundary


def corpus() -> List[Tuple[str, bytes, Optional[str]]]:
    photo = Image.open(str(PHOTOS / "obama.jpg")).convert("RGB").resize((228, 284))
    jpeg = _save(photo, "JPEG")
    gradient16 = (np.linspace(0, 65535, 256 * 200).reshape(200, 256)).astype(np.uint16)
    frames = [Image.new("RGB", (100, 100), c) for c in ((255, 0, 0), (0, 255, 0))]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgba = Image.new("RGBA", (120, 120), (255, 0, 0, 0))
    return [
        ("truncated.jpg", jpeg[: len(jpeg) // 2], "corrupt_image"),
        ("zero.jpg", b"", "empty_upload"),
        ("text.jpg", b"this is not an image, just text pretending to be one\n" * 10, "unsupported_image"),
        ("bomb.png", _png_header_only(20000, 12000), "image_too_large"),
        ("one-pixel.png", _save(Image.new("RGB", (1, 1)), "PNG"), "image_too_small"),
        ("animated.gif", animated.getvalue(), None),
        ("cmyk.jpg", _save(photo.convert("CMYK"), "JPEG"), None),
        ("sixteen-bit.png", _save(Image.fromarray(gradient16), "PNG"), None),
        ("transparent.png", _save(rgba, "PNG"), None),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle r="40"/></svg>',
         "unsupported_image"),
    ]
