"""Safe decoding: every hostile input gives its typed error or a correct decode, never anything else."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from app.encoding import encode_image
from app.errors import CorruptImage, ImageError, ImageTooLarge, UploadTooLarge
from app.faces.decode import ImageLimits, decode_image
from tests.app.hostile import corpus
from tests.conftest import PHOTOS

CASES = corpus()


@pytest.mark.parametrize("name, data, code", CASES, ids=[c[0] for c in CASES])
def test_hostile_inputs_give_typed_errors_or_correct_decodes(name, data, code):
    if code is None:
        rgb = decode_image(data)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        return
    with pytest.raises(ImageError) as err:
        decode_image(data)
    assert err.value.code == code and err.value.message


def test_bomb_message_names_both_sizes():
    data = dict((c[0], c[1]) for c in CASES)["bomb.png"]
    with pytest.raises(ImageTooLarge, match=r"the image is 240 MP \(20000×12000\); the limit is 50 MP"):
        decode_image(data)


def test_byte_limit():
    with pytest.raises(UploadTooLarge, match="limit is 1 MB"):
        decode_image(b"\xff" * 1_500_000, ImageLimits(max_bytes=1_000_000))


def test_exif_rotation_is_applied():
    upright = decode_image((PHOTOS / "obama.jpg").read_bytes())
    rotated = decode_image((PHOTOS / "obama-exif-rotated.jpg").read_bytes())
    assert rotated.shape == upright.shape
    assert np.abs(rotated.astype(int) - upright.astype(int)).mean() < 3


def test_mode_conversions_keep_colours():
    data = dict((c[0], c[1]) for c in CASES)
    gif = decode_image(data["animated.gif"])
    assert tuple(gif[50, 50]) == (255, 0, 0)  # the first frame
    assert tuple(decode_image(data["transparent.png"])[5, 5]) == (255, 255, 255)  # composited on white
    sixteen = decode_image(data["sixteen-bit.png"])
    assert sixteen[0, 0, 0] == 0 and sixteen[-1, -1, 0] == 255 and 100 < sixteen[100, 128, 0] < 155  # scaled
    cmyk = decode_image(data["cmyk.jpg"]).astype(int)
    reference = np.asarray(Image.open(str(PHOTOS / "obama.jpg")).convert("RGB").resize((228, 284))).astype(int)
    assert np.abs(cmyk - reference).mean() < 12


def test_extension_and_content_type_are_not_trusted():
    png_bytes = (PHOTOS / "astronaut.png").read_bytes()
    assert decode_image(png_bytes).shape == (512, 512, 3)  # no name given at all: content decides


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8"), ("webp", b"RIFF")])
def test_encode_formats(fmt, magic):
    data = encode_image(np.zeros((8, 8, 3), np.uint8), fmt)
    assert data.startswith(magic)
    assert Image.open(io.BytesIO(data)).size == (8, 8)


def test_heic_photos_decode_on_this_stack():
    """A HEIC made by pillow-heif itself (the encoder the requirements install) decodes to the same picture."""
    from pillow_heif import from_pillow

    photo = Image.open(str(PHOTOS / "obama.jpg")).convert("RGB").resize((228, 284))
    buffer = io.BytesIO()
    from_pillow(photo).save(buffer, quality=90)
    heic = decode_image(buffer.getvalue())
    assert heic.shape == (284, 228, 3)
    assert np.abs(heic.astype(int) - np.asarray(photo).astype(int)).mean() < 6


def _riff_webp(chunk: bytes, payload: bytes) -> bytes:
    body = chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _jpeg_frame(width: int, height: int, app_bytes: int = 0) -> bytes:
    """SOI, an APP1 segment of ``app_bytes`` (an EXIF block would stand there), a baseline frame header, EOI."""
    app = b"\xff\xe1" + struct.pack(">H", app_bytes + 2) + b"\0" * app_bytes if app_bytes else b""
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app + b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xd9"


def _tiff(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd


HUGE_HEADERS = {
    "webp-vp8l-16384": _riff_webp(b"VP8L", b"\x2f" + struct.pack("<I", 16383 | 16383 << 14) + b"\0" * 16),
    "webp-vp8-16383": _riff_webp(b"VP8 ", b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", 16383, 16383) + b"\0" * 16),
    "webp-vp8x-20000": _riff_webp(b"VP8X", b"\0" * 4 + (19999).to_bytes(3, "little") * 2),
    "jpeg-sof-65500": _jpeg_frame(65500, 65500),
    "jpeg-sof-after-exif": _jpeg_frame(40000, 30000, app_bytes=30000),
    "gif-65535": b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0" * 7 + b";",
    "bmp-30000": b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 30000, -30000, 1, 24,
                                                                            0, 0, 0, 0, 0, 0),
    "tiff-60000": _tiff(60000, 60000),
}


@pytest.mark.parametrize("name", sorted(HUGE_HEADERS))
def test_huge_dimensions_in_any_header_are_too_many_pixels(name):
    """413, not 415: the header says what the image is, even where Pillow's decoder refuses to start."""
    with pytest.raises(ImageTooLarge, match="the limit is 50 MP"):
        decode_image(HUGE_HEADERS[name])


def _photo_as(fmt: str) -> bytes:
    photo = Image.fromarray(np.random.RandomState(0).randint(0, 255, (300, 400, 3)).astype(np.uint8))
    buffer = io.BytesIO()
    if fmt == "HEIC":
        from pillow_heif import from_pillow

        from_pillow(photo).save(buffer, quality=50)
    else:
        exif = Image.Exif()
        exif[0x010E] = "x" * 30000  # a 30 KB EXIF block, as phones write: a short cut ends inside it
        photo.save(buffer, fmt, **({"exif": exif.tobytes()} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIC"])
def test_truncated_files_get_one_status_and_message(fmt):
    data = _photo_as(fmt)
    assert decode_image(data).shape == (300, 400, 3)
    for share in (0.05, 0.3, 0.6, 0.95):  # inside the header, the EXIF block, the pixels, the last bytes
        with pytest.raises(CorruptImage, match=r"file is truncated or damaged — re-export it"):
            decode_image(data[: int(len(data) * share)])
