"""A style is checked against the FFHQ generator, with a message naming the difference."""
from __future__ import annotations

from stylegan2 import pickles
from stylegan2.compatibility import style_mismatch
from stylegan2.layout import describe
from tests.conftest import FIXTURES, STYLEGAN_FIXTURES


def _spec(path):
    return describe(pickles.load_generator(path))


def test_the_toon_and_the_converted_snapshot_fit_ffhq():
    ffhq = _spec(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")
    assert style_mismatch(ffhq, _spec(STYLEGAN_FIXTURES / "tiny-toon.pkl")) is None
    assert style_mismatch(ffhq, _spec(FIXTURES / "stylegan2-ada" / "ada-from-tf.pkl")) is None


def test_a_style_with_another_mapping_is_named():
    ffhq = _spec(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")
    message = style_mismatch(ffhq, _spec(FIXTURES / "stylegan2-ada" / "ada-tiny-native.pkl"))
    assert message is not None and "mapping_layers 2 (FFHQ has 8)" in message


def test_a_style_with_another_resolution_is_named():
    from stylegan2.tiny import TINY_SETTINGS, random_generator

    ffhq = _spec(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")
    other = describe(random_generator(1, dict(TINY_SETTINGS, resolution=32))[2])
    message = style_mismatch(ffhq, other)
    assert message is not None and "resolution 32 (FFHQ has 64)" in message and "num_ws 8 (FFHQ has 10)" in message
