"""bench/startup.py (issue #28) on the tiny models, so that the cold-start bench never rots: every start is a
fresh process that reaches the readiness /readyz reports and a first projection step, the parts it reports add
up to the whole, and the library names the phases the issue asks about. No timing is asserted."""
from __future__ import annotations

import json

import pytest

from stylegan2 import timings
from tests.conftest import run_cli

LIBRARY_PHASES = {timings.FRAMEWORK_IMPORT, timings.PICKLE_READ, timings.WEIGHT_CONVERSION, timings.MODEL_DIGEST,
                  timings.W_STATISTICS, timings.WARM_UP, timings.PROJECTOR_BUILD}


def test_the_startup_bench_times_cold_and_warm_starts_of_the_tiny_models(engine, tiny_models, tmp_path):
    done = run_cli(["bench.startup", "--engine", engine, "--models", str(tiny_models), "--size", "tiny",
                    "--runs", "1", "--out", str(tmp_path)], timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((tmp_path / "startup-tiny.json").read_text())["rows"]
    assert sorted(row["cache"] for row in rows) == ["cold", "warm"]
    for row in rows:
        assert row["engine"] == engine and row["runs"] == 1
        assert 0 < row["ready_min_s"] <= row["first_step_min_s"], row
        parts = row["parts_median_s"]
        assert LIBRARY_PHASES <= set(parts), parts
        assert (timings.GRAPH_BUILD in parts) == (engine == "tf1"), parts
        assert sum(parts.values()) == pytest.approx(row["first_step_median_s"], rel=1e-6), parts


def test_a_phase_counts_only_while_its_thread_records():
    with timings.phase(timings.WARM_UP):
        pass  # nobody records: nothing to add to
    with timings.recording() as outer:
        with timings.phase(timings.PICKLE_READ):
            pass
        with timings.recording() as inner:
            with timings.phase(timings.WARM_UP):
                pass
        with timings.phase(timings.PICKLE_READ):
            pass
    assert set(outer) == {timings.PICKLE_READ} and set(inner) == {timings.WARM_UP}
    assert "pickle read" in timings.summary(outer)
