"""Every variable is consumed and shape-checked; unsupported settings are clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.errors import ModelStructureError
from stylegan2.layout import describe
from stylegan2.tiny import CONFIG_F_SETTINGS, random_generator
from tests.conftest import STYLEGAN_FIXTURES


def _gs():
    return pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")


def test_config_f_layout_matches_the_spec():
    spec = describe(random_generator(0, CONFIG_F_SETTINGS)[2])
    assert spec.num_ws == 18 and spec.resolution == 1024
    assert len(spec.noise_resolutions) == 17 and spec.noise_resolutions[-1] == 1024
    trainable = sum(v.size for n, v in spec.synthesis_vars.items() if not n.startswith("noise"))
    assert trainable == 28268812
    assert sum(v.size for v in spec.mapping_vars.values()) == 2101248
    assert [(layer.scope, layer.w_index) for layer in spec.layers][-3:] == [("1024x1024/Conv0_up", 15),
                                                                ("1024x1024/Conv1", 16), ("1024x1024/ToRGB", 17)]


def test_missing_variable_is_named():
    gs = _gs()
    del gs.component("synthesis").variables["32x32/Conv1/mod_bias"]
    with pytest.raises(ModelStructureError, match="32x32/Conv1/mod_bias"):
        describe(gs)


def test_wrong_shape_is_named():
    gs = _gs()
    gs.component("synthesis").variables["8x8/ToRGB/weight"] = np.zeros([1, 1, 64, 4], np.float32)
    with pytest.raises(ModelStructureError, match=r"8x8/ToRGB/weight has shape \(1, 1, 64, 4\)"):
        describe(gs)


def test_extra_variable_is_named():
    gs = _gs()
    gs.component("mapping").variables["LabelConcat/weight"] = np.zeros([1, 1], np.float32)
    with pytest.raises(ModelStructureError, match="LabelConcat/weight"):
        describe(gs)


@pytest.mark.parametrize("key, value", [("architecture", "resnet"), ("label_size", 10)])
def test_unsupported_settings_are_refused(key, value):
    gs = _gs()
    gs.component("synthesis").static_kwargs[key] = value
    with pytest.raises(ModelStructureError, match=key):
        describe(gs)
