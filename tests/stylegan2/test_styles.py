"""The style registry (issue 26): styles found, checked against FFHQ, refused with a message, and blended at load
into the very generator ``python -m stylegan2 blend`` writes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.generator_pair import GeneratorPair
from stylegan2.layout import describe
from stylegan2.styles import DEFAULT_STYLE, find_styles, load_styles, parse_settings
from stylegan2.tiny import random_generator
from tests.conftest import FIXTURES, STYLEGAN_FIXTURES, run_cli

FFHQ = STYLEGAN_FIXTURES / "tiny-ffhq.pkl"
OTHER = STYLEGAN_FIXTURES / "tiny-other.pkl"
ADA_TWIN = FIXTURES / "stylegan2-ada" / "ada-from-tf.pkl"
BLEND = {"blend_resolution": 16, "blend_width": 0.7}


@pytest.fixture(scope="module")
def styles_dir(tmp_path_factory):
    """As issue 26's test asks: a TF pickle used as it is, the same fine-tune blended at load, an ADA snapshot,
    a style of another resolution, one with bad settings, one with a reserved name."""
    folder = tmp_path_factory.mktemp("styles")
    shutil.copy(str(OTHER), str(folder / "plain.pkl"))
    shutil.copy(str(OTHER), str(folder / "blended.pkl"))
    (folder / "blended.json").write_text(json.dumps(dict(BLEND, display_name="Blended on the fly", licence="CC0",
                                                         default_strength=0.8)))
    shutil.copy(str(ADA_TWIN), str(folder / "ada.pkl"))
    pickles.save(random_generator(3, {"resolution": 32, "fmap_base": 1024, "fmap_max": 64}), folder / "small.pkl")
    shutil.copy(str(OTHER), str(folder / "bad.pkl"))
    (folder / "bad.json").write_text('{"default_strength": 2}')
    shutil.copy(str(OTHER), str(folder / "all.pkl"))
    return folder


@pytest.fixture(scope="module")
def loaded(styles_dir):
    toon = describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-toon.pkl"))
    return load_styles(styles_dir, pickles.load_generator(FFHQ), toon)


def test_styles_load_default_first_and_refuse_with_reasons(loaded):
    assert loaded.names == [DEFAULT_STYLE, "ada", "blended", "plain"]
    assert loaded.settings["blended"].display_name == "Blended on the fly"
    assert loaded.settings["blended"].default_strength == 0.8
    assert loaded.settings["plain"].display_name == "Plain"
    reasons = {refusal.name: refusal.reason for refusal in loaded.refused}
    assert set(reasons) == {"small", "bad", "all"}
    assert "resolution 32 (FFHQ has 64)" in reasons["small"]
    assert "default_strength" in reasons["bad"] and "bad.json" in reasons["bad"]
    assert "reserved" in reasons["all"]


def test_blend_at_load_equals_the_cli_blend_written_and_read_back(engine, loaded, tmp_path):
    from stylegan2.engines import backend

    out = tmp_path / "blended-by-cli.pkl"
    result = run_cli(["stylegan2", "blend", "--low", str(OTHER), "--high", str(FFHQ), "--resolution", "16",
                      "--width", "0.7", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    from_disk = describe(pickles.load_generator(out))
    for name, value in from_disk.synthesis_vars.items():
        assert np.array_equal(value, loaded.specs["blended"].synthesis_vars[name]), name
    ws = np.load(str(STYLEGAN_FIXTURES / "reference" / "ffhq-synthesis.npz"))["ws"][:4]
    networks = backend(engine)
    on_the_fly = networks.Generator(loaded.specs["blended"]).synthesize(ws)
    cli = networks.Generator(from_disk).synthesize(ws)
    assert np.array_equal(on_the_fly, cli)
    plain = networks.Generator(loaded.specs["plain"]).synthesize(ws)
    assert not np.array_equal(on_the_fly, plain)  # blending changed something


def test_one_projection_renders_in_every_style(engine, loaded):
    """The same W+ through the pair in each style; the ADA twin of FFHQ renders FFHQ's pixels."""
    from stylegan2.engines import backend

    pair = GeneratorPair(backend(engine), FFHQ, STYLEGAN_FIXTURES / "tiny-toon.pkl")
    for name in loaded.names[1:]:
        pair.add_style(name, loaded.specs[name])
    ws = np.load(str(STYLEGAN_FIXTURES / "reference" / "ffhq-synthesis.npz"))["ws"][:2]
    images = {name: pair.render(ws, 1.0, name) for name in pair.styles}
    assert np.array_equal(images["ada"], pair.render(ws, 0.0))
    assert not np.array_equal(images[DEFAULT_STYLE], images["plain"])
    half = pair.render(ws, 0.5, "plain")
    assert half.shape == images["plain"].shape and not np.array_equal(half, images["plain"])
    with pytest.raises(KeyError):
        pair.render(ws, 1.0, "nope")


@pytest.mark.parametrize("data, fragment", [
    ([], "JSON object"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"blend_resolution": 48}, "power of two"),
    ({"blend_resolution": "16"}, "blend_resolution must be a number"),
    ({"blend_width": 1.0}, "with a blend_resolution"),
    ({"default_strength": -0.1}, "within [0, 1]"),
    ({"display_name": "x" * 300}, "at most 200"),
    ({"licence": 7}, "licence must be one line"),
])
def test_bad_settings_are_refused_naming_the_key(data, fragment):
    with pytest.raises(ValueError) as raised:
        parse_settings("s", data)
    assert fragment in str(raised.value)


def test_a_missing_folder_has_no_styles(tmp_path):
    assert find_styles(tmp_path / "none") == ([], [])


def test_styles_past_the_bound_render_the_same_pixels_and_never_exceed_it(engine, loaded):
    """Issue 26.5: with at most one added style on the device, every style (at full and in-between strength,
    revisited so dropped ones are rebuilt) renders what an unbounded pair renders."""
    from stylegan2.engines import backend

    pairs = [GeneratorPair(backend(engine), FFHQ, STYLEGAN_FIXTURES / "tiny-toon.pkl", styles_on_device=bound)
             for bound in (0, 1)]
    for pair in pairs:
        for name in loaded.names[1:]:
            pair.add_style(name, loaded.specs[name])
    unbounded, bounded = pairs
    assert bounded.held.held == [DEFAULT_STYLE, "ada"]  # the first added style is built at once, the rest wait
    ws = np.load(str(STYLEGAN_FIXTURES / "reference" / "ffhq-synthesis.npz"))["ws"][:2]
    order = [("plain", 1.0), ("blended", 0.5), ("ada", 1.0), ("plain", 0.5), (DEFAULT_STYLE, 1.0), ("blended", 1.0)]
    for name, strength in order:
        assert np.array_equal(bounded.render(ws, strength, name), unbounded.render(ws, strength, name)), name
        held = bounded.held.held
        assert held[0] == DEFAULT_STYLE and len(held) <= 2, held
        assert name == DEFAULT_STYLE or held[-1] == name
    assert bounded.held.builds == 6  # ada at setup, then every added style's render after another's
    assert sorted(unbounded.held.held) == sorted(loaded.names) and unbounded.held.builds == 3


def test_the_pair_loads_a_styles_folder_and_keeps_no_ffhq_record(engine, styles_dir, loaded):
    """The FFHQ record checks the styles while the pair is built, then goes: a config-f record is 360 MB of
    host memory no later render reads."""
    from stylegan2.engines import backend

    pair = GeneratorPair(backend(engine), FFHQ, STYLEGAN_FIXTURES / "tiny-toon.pkl", styles=styles_dir)
    assert pair.styles == loaded.names and pair.loaded_styles.names == loaded.names
    assert sorted(refusal.name for refusal in pair.loaded_styles.refused) == ["all", "bad", "small"]
    assert not [name for name, value in vars(pair).items() if isinstance(value, pickles.NetworkRecord)]
    ws = np.load(str(STYLEGAN_FIXTURES / "reference" / "ffhq-synthesis.npz"))["ws"][:2]
    separate = GeneratorPair(backend(engine), FFHQ, STYLEGAN_FIXTURES / "tiny-toon.pkl")
    separate.add_style("blended", loaded.specs["blended"])
    assert np.array_equal(pair.render(ws, 1.0, "blended"), separate.render(ws, 1.0, "blended"))
