"""Projection batches sized to the device's memory, and a batch that runs out split in halves."""
from __future__ import annotations

import numpy as np
import pytest

from app.batches import BatchOutOfMemory
from app.config import Settings
from app.errors import DeviceOutOfMemory
from app.options import ProjectionOptions
from app.toonify import Toonify
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
def tight_toonify(engine, tiny_models):
    """A Toonify told it has memory for 2.5 faces and configured for batches of 4: a batch of 4 cannot run."""
    probe = Toonify(Settings(engine=engine, models_dir=tiny_models)).setup()
    budget = int(probe.batches.per_face_bytes * 2.5)
    return Toonify(Settings(engine=engine, models_dir=tiny_models, device_memory_bytes=budget, batch_size=4)).setup()


def test_a_batch_out_of_memory_is_halved_and_every_face_projected(tight_toonify):
    aligned = np.random.RandomState(0).randint(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    with pytest.raises(BatchOutOfMemory):
        tight_toonify.batches.check(4)
    latents = tight_toonify.project_aligned(aligned, ProjectionOptions(steps=2, seed=0))
    assert latents.shape == (4, tight_toonify.num_ws, 512) and np.isfinite(latents).all()
    assert tight_toonify.batches.oom_ceiling == 2 and tight_toonify.batches.max_batch == 2
    again = tight_toonify.project_aligned(aligned[2:], ProjectionOptions(steps=2, seed=2))  # later jobs start at 2
    np.testing.assert_allclose(again, latents[2:], atol=1e-4)  # same seeds per face, whatever the batching


def test_a_single_face_that_does_not_fit_fails_with_a_reason(engine, tiny_models):
    starved = Toonify(Settings(engine=engine, models_dir=tiny_models, device_memory_bytes=1000)).setup()
    with pytest.raises(DeviceOutOfMemory) as err:
        starved.project_aligned(np.zeros((2, 64, 64, 3), np.uint8), ProjectionOptions(steps=2))
    assert err.value.code == "device_out_of_memory" and "GPU" in err.value.message
