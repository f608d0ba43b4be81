"""Projection batches sized to the device's memory, and a batch that runs out split in halves."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine import BatchOutOfMemory, Engine
from app.errors import DeviceOutOfMemory
from stylegan2.engines import backend
from stylegan2.layout import describe
from stylegan2.memory import batch_that_fits, bytes_per_face
from stylegan2.perceptual import VGG16_CHANNELS
from stylegan2.tiny import CONFIG_F_SETTINGS, random_generator


def test_config_f_on_paper_and_the_8_gb_card():
    per_face = bytes_per_face(describe(random_generator(0, CONFIG_F_SETTINGS)[-1]), VGG16_CHANNELS)
    assert 2e9 < per_face < 6e9  # dominated by the 32–64-channel maps at 512² and 1024²
    assert batch_that_fits(8 << 30, per_face, 4) == 2
    assert batch_that_fits(80 << 30, per_face, 4) == 4 and batch_that_fits(1 << 30, per_face, 4) == 1


def test_the_engine_knows_a_real_out_of_memory_error(engine):
    memory = backend(engine)
    if engine == "torch":
        import torch

        with pytest.raises(RuntimeError) as refused:  # the CPU allocator's own refusal, not a made-up error
            torch.empty(1 << 62, dtype=torch.uint8)
        assert memory.is_out_of_memory(refused.value)
    else:
        import tensorflow as tf

        assert memory.is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating"))
    assert not memory.is_out_of_memory(ValueError("shapes do not match"))
    assert memory.free_device_bytes() is None  # no GPU here: the documented CPU fallback applies


@pytest.fixture(scope="module")
def tight_engine(engine, tiny_models):
    """An engine told it has memory for 2.5 faces: a batch of 4 cannot run, 2 can."""
    probe = Engine(engine, tiny_models)
    return Engine(engine, tiny_models, device_memory_bytes=int(probe.per_face_bytes * 2.5))


def test_a_batch_out_of_memory_is_halved_and_every_face_projected(tight_engine):
    aligned = np.random.RandomState(0).randint(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    with pytest.raises(BatchOutOfMemory):
        tight_engine.project(aligned, 2, [0, 1, 2, 3])
    latents = tight_engine.project_all(aligned, 2, first_seed=0, batch_size=4)
    assert latents.shape == (4, tight_engine.num_ws, 512) and np.isfinite(latents).all()
    assert tight_engine.oom_ceiling == 2 and tight_engine.max_batch == 2
    again = tight_engine.project_all(aligned[2:], 2, first_seed=2, batch_size=4)  # later jobs start at 2
    np.testing.assert_allclose(again, latents[2:], atol=1e-4)  # same seeds per face, whatever the batching


def test_a_single_face_that_does_not_fit_fails_with_a_reason(engine, tiny_models):
    starved = Engine(engine, tiny_models, device_memory_bytes=1000)
    with pytest.raises(DeviceOutOfMemory) as err:
        starved.project_all(np.zeros((2, 64, 64, 3), np.uint8), 2, first_seed=0)
    assert err.value.code == "device_out_of_memory" and "GPU" in err.value.message
