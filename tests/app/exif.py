"""Hand-built EXIF blocks (TIFF IFDs, little-endian) with any tag types, including ones Pillow cannot write."""
from __future__ import annotations

import io
import random
import struct
from typing import List, Tuple

from PIL import Image

TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
Entry = Tuple[int, int, int, bytes]  # tag, type, count, raw value bytes (count × type size)


def exif_block(entries: List[Entry]) -> bytes:
    """b"Exif\\0\\0" + a TIFF header and one IFD; values over 4 bytes go after the IFD."""
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd, extra = [struct.pack("<H", len(entries))], []
    for tag, type_, count, value in entries:
        if len(value) <= 4:
            ifd.append(struct.pack("<HHI", tag, type_, count) + value.ljust(4, b"\0"))
        else:
            ifd.append(struct.pack("<HHII", tag, type_, count, data_offset + sum(len(e) for e in extra)))
            extra.append(value)
    ifd.append(struct.pack("<I", 0))
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + b"".join(ifd) + b"".join(extra)


def orientation(value: int) -> Entry:
    return (0x0112, 3, 1, struct.pack("<H", value))


def rational_width(numerator: int = 3, denominator: int = 2) -> Entry:
    """ImageWidth typed RATIONAL: readable, but Pillow's exif_transpose fails re-encoding it (struct.error)."""
    return (0x0100, 5, 1, struct.pack("<II", numerator, denominator))


def random_entry(rng: random.Random) -> Entry:
    tag = rng.choice([0x0100, 0x0101, 0x0112, 0x011A, 0x0128, 0x8769, 0x8825, 0x9003, rng.randrange(65536)])
    type_ = rng.choice(list(TYPE_SIZES) + [0, 13, 255])
    count = rng.choice([0, 1, 2, 3, rng.randrange(1, 64), 0xFFFFFFFF])
    length = min(TYPE_SIZES.get(type_, 1) * count, 256)
    return tag, type_, count, bytes(rng.randrange(256) for _ in range(length))


def jpeg_with_exif(exif: bytes, size=(120, 80)) -> bytes:
    """A JPEG whose left half is dark and right half light, so orientation is visible in the pixels."""
    image = Image.new("RGB", size, (30, 30, 30))
    image.paste((230, 230, 230), (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()
