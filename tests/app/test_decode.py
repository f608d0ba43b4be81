"""Safe decoding: every hostile input gives its typed error or a correct decode, never anything else."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.encoding import encode_image
from app.errors import ImageError, ImageTooLarge, UploadTooLarge
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
