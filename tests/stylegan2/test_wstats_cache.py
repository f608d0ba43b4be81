"""The w-statistics cache is shared by workers: two computing the same file at once must both succeed."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np

from stylegan2.projection import cached_w_statistics
from stylegan2.toonifier import default_cache_dir


def test_two_workers_filling_the_cache_at_once_both_succeed_and_leave_one_file(tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(b"weights")
    both_computing = threading.Barrier(2)

    def map_fn(z: np.ndarray) -> np.ndarray:
        if not getattr(both_computing, "passed", False):
            both_computing.wait(timeout=10)
            both_computing.passed = True
        return np.tanh(z[:, :4] * 0.5)

    spec = SimpleNamespace(z_dim=8)
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: cached_w_statistics(map_fn, spec, model, cache, samples=2000), [0, 1]))
    (first_avg, first_std), (second_avg, second_std) = results
    assert np.array_equal(first_avg, second_avg) and first_std == second_std
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz") and ".part" not in files[0]
    cached_avg, cached_std = cached_w_statistics(lambda z: 1 / 0, spec, model, cache, samples=2000)  # from the file
    assert np.array_equal(cached_avg, first_avg) and cached_std == first_std


def test_cache_folder_is_the_configured_one_else_beside_the_model(tmp_path, monkeypatch):
    """The library takes the folder as an argument: TOONIFY_CACHE_DIR in its environment changes nothing."""
    model = tmp_path / "models" / "model.pkl"
    model.parent.mkdir()
    monkeypatch.setenv("TOONIFY_CACHE_DIR", str(tmp_path / "from-env"))
    assert default_cache_dir(model, tmp_path / "chosen") == tmp_path / "chosen"
    assert default_cache_dir(model, None) == model.parent.resolve() / ".cache"
