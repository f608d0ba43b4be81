"""What an image file says about itself before any decoder runs: its format, by signature, and its width and
height where the first bytes hold them. The decoder checks these dimensions before Pillow opens the file (a
header that claims 16384² is too many pixels whether or not Pillow could decode it), and tells a truncated or
damaged photo (a known signature Pillow cannot open) from a file that is no image at all."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

Size = Tuple[int, int]
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0…SOF15 (not DHT, JPG, DAC)
JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
TIFF_WIDTH, TIFF_HEIGHT = 256, 257


@dataclass(frozen=True)
class Header:
    format: str  # the name Pillow gives the format
    size: Optional[Size]  # (width, height) when the bytes read hold them


def _unpack(fmt: str, data: bytes, offset: int) -> Optional[tuple]:
    end = offset + struct.calcsize(fmt)
    return struct.unpack(fmt, data[offset:end]) if 0 <= offset and end <= len(data) else None


def _jpeg(data: bytes) -> Optional[Size]:
    """Walk the marker segments up to the first frame header (SOFn), skipping APPn data (EXIF thumbnails)."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_STANDALONE_MARKERS:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = _unpack(">H", data, at + 2)
        if marker in JPEG_FRAME_MARKERS:
            dims = _unpack(">HH", data, at + 5)
            return (dims[1], dims[0]) if dims else None
        at += 2 + (length[0] if length else len(data))
    return None


def _png(data: bytes) -> Optional[Size]:
    return _unpack(">II", data, 16) if data[12:16] == b"IHDR" else None


def _gif(data: bytes) -> Optional[Size]:
    return _unpack("<HH", data, 6)


def _bmp(data: bytes) -> Optional[Size]:
    header = _unpack("<I", data, 14)
    if header and header[0] == 12:  # OS/2 BITMAPCOREHEADER
        return _unpack("<HH", data, 18)
    dims = _unpack("<ii", data, 18)
    return (abs(dims[0]), abs(dims[1])) if dims else None


def _webp(data: bytes) -> Optional[Size]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        dims = _unpack("<HH", data, 26)
        return (dims[0] & 0x3FFF, dims[1] & 0x3FFF) if dims else None
    if chunk == b"VP8L":
        bits = _unpack("<I", data, 21)
        return ((bits[0] & 0x3FFF) + 1, ((bits[0] >> 14) & 0x3FFF) + 1) if bits else None
    if chunk == b"VP8X":
        raw = data[24:30]
        if len(raw) < 6:
            return None
        return int.from_bytes(raw[0:3], "little") + 1, int.from_bytes(raw[3:6], "little") + 1
    return None


def _tiff(data: bytes) -> Optional[Size]:
    """ImageWidth and ImageLength of the first image file directory."""
    order = "<" if data[:2] == b"II" else ">"
    offset = _unpack(order + "I", data, 4)
    count = _unpack(order + "H", data, offset[0]) if offset else None
    if count is None:
        return None
    found: Dict[int, int] = {}
    for index in range(count[0]):
        entry = _unpack(order + "HHI4s", data, offset[0] + 2 + 12 * index)
        if entry is None:
            return None
        tag, kind, _, value = entry
        if tag in (TIFF_WIDTH, TIFF_HEIGHT) and kind in (3, 4):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
        if len(found) == 2:
            return found[TIFF_WIDTH], found[TIFF_HEIGHT]
    return None


SIGNATURES: Tuple[Tuple[Callable[[bytes], bool], str, Callable[[bytes], Optional[Size]]], ...] = (
    (lambda d: d[:3] == b"\xff\xd8\xff", "JPEG", _jpeg),
    (lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", "PNG", _png),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), "GIF", _gif),
    (lambda d: d[:2] == b"BM", "BMP", _bmp),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", "WEBP", _webp),
    (lambda d: d[:4] in (b"II*\x00", b"MM\x00*"), "TIFF", _tiff),
    (lambda d: d[4:8] == b"ftyp" and d[8:12] in HEIF_BRANDS, "HEIF", lambda d: None),  # size: deep in the meta box
)


def read_header(data: bytes) -> Optional[Header]:
    """The format whose signature ``data`` starts with, and the dimensions its header states; None when no
    accepted format's signature matches."""
    for matches, name, size_of in SIGNATURES:
        if matches(data):
            return Header(name, size_of(data))
    return None
