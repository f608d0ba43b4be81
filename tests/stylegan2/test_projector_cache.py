"""One compiled projector per (model, batch size) serves every step count: a service that sees jobs with many
different ``steps`` keeps a flat memory footprint (issue #15: the tf1 graph used to grow ~50 MB per value)."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from stylegan2.model_files import ModelPaths
from stylegan2.projection import ProjectorConfig
from stylegan2.toonifier import Toonifier

JOBS = 50


def _rss_bytes() -> int:
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux /proc to read the resident set size")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")


def test_distinct_step_counts_share_one_projector_and_memory_stays_flat(engine, tiny_models):
    toonifier = Toonifier(engine, ModelPaths.in_dir(tiny_models))
    face = np.random.RandomState(3).randint(0, 256, (1, toonifier.resolution, toonifier.resolution, 3))
    face = face.astype(np.uint8)
    rss = []
    for job in range(JOBS):
        config = ProjectorConfig(steps=100 + job)
        result = toonifier.project(face, [job], config, should_cancel=lambda: True)  # one step per job
        assert result.steps_done == 1 and result.latents.shape == (1, toonifier.num_ws, 512)
        gc.collect()
        rss.append(_rss_bytes())
    assert toonifier.projector(1, ProjectorConfig(steps=7)) is toonifier.projector(1, ProjectorConfig(steps=9000))
    warm = rss[4]  # after the first few jobs the allocators have settled
    assert max(rss[5:]) <= 1.05 * warm and min(rss[5:]) >= 0.95 * warm, [r >> 20 for r in rss]


def test_a_projector_refuses_a_run_of_another_structure(engine, tiny_models):
    toonifier = Toonifier(engine, ModelPaths.in_dir(tiny_models))
    projector = toonifier.projector(1, ProjectorConfig(steps=5))
    face = np.zeros((1, toonifier.resolution, toonifier.resolution, 3), np.uint8)
    with pytest.raises(ValueError, match="built for"):
        projector.project(face, [0], ProjectorConfig(steps=5, space="w"))
    assert toonifier.projector(1, ProjectorConfig(space="w")) is not projector
