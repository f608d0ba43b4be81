"""Projection precision (issue #28): what ``auto`` means per device, refusals that say what the device offers,
lower precisions that stay within the quality guard, and the GPU check running on the CPU so it never rots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.precision import MAX_DISTANCE_RATIO, aligned_target, guard
from stylegan2.model_files import ModelPaths
from stylegan2.precision import BF16, FP16, FP32, TF32, DeviceTraits, PrecisionUnavailable, cpu_has_bf16, resolve
from stylegan2.projection import ProjectorConfig
from stylegan2.toonifier import Toonifier
from tests.conftest import run_cli

PLAIN_CPU = DeviceTraits("cpu")
BF16_CPU = DeviceTraits("cpu", cpu_bf16=True)
TURING = DeviceTraits("cuda", capability=(7, 5))
HOPPER = DeviceTraits("cuda", capability=(9, 0))


@pytest.mark.parametrize("traits, expected", [(PLAIN_CPU, FP32), (BF16_CPU, BF16), (TURING, FP32), (HOPPER, BF16)])
def test_auto_is_the_fastest_guarded_mode_of_the_device(traits, expected):
    assert resolve("auto", "torch", traits) == expected
    assert resolve("auto", "tf1", traits) == FP32


@pytest.mark.parametrize("engine, requested, traits, offered", [
    ("torch", TF32, BF16_CPU, "fp32, bf16, fp16"), ("torch", BF16, PLAIN_CPU, "fp32, fp16"),
    ("torch", BF16, TURING, "fp32, fp16"), ("tf1", FP16, HOPPER, "fp32"), ("tf1", BF16, PLAIN_CPU, "fp32")])
def test_a_mode_the_device_lacks_is_refused_with_what_it_offers(engine, requested, traits, offered):
    with pytest.raises(PrecisionUnavailable) as refused:
        resolve(requested, engine, traits)
    assert "precision %s does not apply to the %s engine" % (requested, engine) in str(refused.value)
    assert str(refused.value).endswith("it offers " + offered)
    assert resolve(TF32, "torch", HOPPER) == TF32 and resolve(FP16, "torch", TURING) == FP16
    with pytest.raises(PrecisionUnavailable, match="one of fp32, tf32, bf16, fp16, auto"):
        resolve("half", "torch", HOPPER)


def test_cpu_bf16_is_read_from_the_flags(tmp_path):
    (tmp_path / "bf16").write_text("flags\t\t: fpu sse avx512f avx512_bf16\n")
    (tmp_path / "plain").write_text("flags\t\t: fpu sse avx512f avx512bw\n")
    assert cpu_has_bf16(tmp_path / "bf16") and not cpu_has_bf16(tmp_path / "plain")
    assert not cpu_has_bf16(tmp_path / "missing")


def test_the_projector_config_takes_only_resolved_modes():
    with pytest.raises(ValueError, match="precision must be one of"):
        ProjectorConfig(precision="auto")
    assert ProjectorConfig(precision=BF16).structure != ProjectorConfig().structure  # its own projector


@pytest.fixture(scope="module")
def toonifier(engine, tiny_models) -> Toonifier:
    return Toonifier(engine, ModelPaths.in_dir(tiny_models))


def test_the_engine_resolves_for_its_own_device(toonifier, engine):
    assert toonifier.precision("auto") in ((BF16, FP32) if engine == "torch" else (FP32,))
    if engine == "tf1":
        with pytest.raises(PrecisionUnavailable, match="tf1 engine on this CPU; it offers fp32"):
            toonifier.precision(BF16)


def test_lower_precisions_stay_within_the_quality_guard(toonifier, engine):
    """bf16 and fp16 projections, judged in fp32, land within 3 % of the fp32 projection's distance; their
    latents are fp32 and their renders differ from fp32's by a few grey levels on average."""
    if engine != "torch":
        pytest.skip("the tf1 engine projects in fp32 only")
    modes = [FP16] + ([BF16] if cpu_has_bf16() else [])
    rows = guard(toonifier, aligned_target(toonifier.resolution), 30, modes)
    assert [row["precision"] for row in rows] == [FP32] + modes
    for row in rows:
        assert row["vs_fp32"] <= MAX_DISTANCE_RATIO and row["holds"], rows
        assert row["mean_abs_levels"] < 40, rows  # the same face, not another image
    result = toonifier.project(aligned_target(toonifier.resolution), [0], ProjectorConfig(steps=2, precision=FP16))
    assert result.latents.dtype == np.float32


def test_gpu_check_runs_on_the_cpu_with_the_tiny_models(engine, tmp_path):
    if engine != "torch":
        pytest.skip("the GPU check runs the torch engine")
    done = run_cli(["bench.gpu_check", "--tiny", "--device", "cpu", "--steps", "1", "--guard-steps", "3",
                    "--out", str(tmp_path)], timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["device"]["device"] == "cpu" and FP32 in report["device"]["precisions"]
    assert report["fidelity"]["holds"]
    assert {(row["batch"], row["precision"]) for row in report["steps"]} == {
        (batch, mode) for batch in (1, 2) for mode in report["device"]["precisions"]}
    assert report["oom_halving"]["batches_tried"][:3] == [8, 4, 2] and report["oom_halving"]["faces_projected"] == 8
    assert [row["batch"] for row in report["synthesis"]] == [1, 2]
    assert "gpu check passed" in done.stdout
