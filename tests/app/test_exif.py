"""EXIF is input too: a broken tag is ignored, the orientation still applied when it can be read."""
from __future__ import annotations

import random

import numpy as np
import pytest

from app.errors import ImageError
from app.faces.decode import decode_image
from tests.app.exif import exif_block, jpeg_with_exif, orientation, random_entry, rational_width

FUZZ_FILES = 400


def _dark_side(rgb: np.ndarray) -> str:
    """Where the dark half of jpeg_with_exif's picture ended up: left, right, top or bottom."""
    height, width = rgb.shape[:2]
    halves = {"left": rgb[:, : width // 2], "right": rgb[:, width // 2:], "top": rgb[: height // 2],
              "bottom": rgb[height // 2:]}
    return min(halves, key=lambda side: halves[side].mean())


def test_orientation_6_is_applied_despite_a_rational_width_tag():
    data = jpeg_with_exif(exif_block([orientation(6), rational_width()]))
    rgb = decode_image(data)
    assert rgb.shape == (120, 80, 3)  # stored 120×80 landscape, shown rotated 90° clockwise
    assert _dark_side(rgb) == "top"


@pytest.mark.parametrize("value, shape, dark", [(1, (80, 120, 3), "left"), (3, (80, 120, 3), "right"),
                                                (8, (120, 80, 3), "bottom"), (0, (80, 120, 3), "left"),
                                                (999, (80, 120, 3), "left")])
def test_orientations_and_nonsense_values(value, shape, dark):
    rgb = decode_image(jpeg_with_exif(exif_block([rational_width(), orientation(value)])))
    assert rgb.shape == shape and _dark_side(rgb) == dark


def test_fuzzed_exif_blocks_decode_or_give_a_typed_error():
    rng = random.Random(15)
    decoded = 0
    for _ in range(FUZZ_FILES):
        entries = [random_entry(rng) for _ in range(rng.randrange(1, 6))]
        if rng.random() < 0.5:
            entries.insert(rng.randrange(len(entries) + 1), orientation(rng.choice([1, 3, 6, 8])))
        block = exif_block(entries)
        if rng.random() < 0.2:  # truncated or bit-flipped blocks too
            block = block[: rng.randrange(6, len(block) + 1)]
        try:
            rgb = decode_image(jpeg_with_exif(block))
        except ImageError as exc:
            assert exc.message
            continue
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and sorted(rgb.shape[:2]) == [80, 120]
        decoded += 1
    assert decoded > FUZZ_FILES // 2
