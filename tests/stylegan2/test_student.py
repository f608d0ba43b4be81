"""The fast-mode student's weight file, its forward pass in both engines, and the pairs it learns from."""
from __future__ import annotations

import os
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.engines import backend
from stylegan2.errors import ModelStructureError
from stylegan2.generator_pair import GeneratorPair
from stylegan2.layout import describe
from stylegan2.pairs import Manifest, render_pairs, resize
from stylegan2.sampling import broadcast, to_uint8, truncate
from stylegan2.student import init_student, load_student, save_student
from tests.conftest import REPO, run_cli

OTHER = {"tf1": "torch", "torch": "tf1"}


def _random_student(strength_input: bool = False):
    """A student whose every layer matters (init_student zeroes the output layer: the identity)."""
    spec = init_student(32, (8, 16, 16), strength_input, seed=3)
    rnd = np.random.RandomState(4)
    for name, value in spec.weights.items():
        spec.weights[name] = (value + rnd.randn(*value.shape).astype(np.float32) * 0.1).astype(np.float32)
    return spec


def test_untrained_student_returns_its_input(engine):
    faces = np.random.RandomState(0).randint(0, 256, [2, 32, 32, 3]).astype(np.uint8)
    student = backend(engine).Student(init_student(32, (8, 16)))
    assert np.abs(student.toonify(faces).astype(int) - faces).max() <= 1


def test_student_file_round_trip_and_bad_files(tmp_path):
    spec = _random_student(strength_input=True)
    save_student(spec, tmp_path / "s.npz")
    loaded = load_student(tmp_path / "s.npz")
    assert loaded.channels == (8, 16, 16) and loaded.takes_strength and loaded.resolution == 32
    assert all(np.array_equal(loaded.weights[k], v) for k, v in spec.weights.items())
    arrays = dict(np.load(str(tmp_path / "s.npz")))
    arrays["up1/weight"] = arrays["up1/weight"][:, :, :5]
    np.savez(str(tmp_path / "bad.npz"), **arrays)
    with pytest.raises(ModelStructureError, match="up1/weight"):
        load_student(tmp_path / "bad.npz")
    (tmp_path / "html.npz").write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(ModelStructureError, match="not a readable student file"):
        load_student(tmp_path / "html.npz")


def test_engines_agree_on_the_student(tmp_path, engine):
    """The same .npz gives the same toon in tf1 and torch (the other engine runs in its own venv)."""
    other_python = REPO / ".venv" / OTHER[engine] / "bin" / "python"
    if not other_python.exists():
        pytest.skip("the other engine's venv is not built")
    save_student(_random_student(strength_input=True), tmp_path / "s.npz")
    faces = np.random.RandomState(1).randint(0, 256, [3, 32, 32, 3]).astype(np.uint8)
    np.save(str(tmp_path / "faces.npy"), faces)
    script = ("import numpy as np; from stylegan2.engines import backend; from stylegan2.student import "
              "load_student; s = backend('%s').Student(load_student('%s'), 'cpu'); "
              "np.save('%s', s.toonify(np.load('%s'), 0.6))"
              % (OTHER[engine], tmp_path / "s.npz", tmp_path / "theirs.npy", tmp_path / "faces.npy"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    result = subprocess.run([str(other_python), "-c", script], cwd=str(REPO), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ours = backend(engine).Student(load_student(tmp_path / "s.npz")).toonify(faces, 0.6)
    theirs = np.load(str(tmp_path / "theirs.npy"))
    assert np.abs(ours.astype(int) - theirs).max() <= 1  # uint8 rounding of float32 sums that differ by ~1e-6
    assert np.mean(ours != theirs) < 0.01
    assert np.abs(ours.astype(int) - faces).mean() > 10  # the student did change the faces


def test_pairs_are_resumable_and_match_generate(tmp_path, engine, tiny_models):
    ffhq, toon = tiny_models / "stylegan2-ffhq-config-f.pkl", tiny_models / "ffhq-cartoon-blended-64.pkl"
    first = run_cli(["stylegan2", "pairs", "--ffhq", str(ffhq), "--toon", str(toon), "--count", "5",
                     "--resolution", "32", "--shard-size", "2", "--psi", "0.5", "--strength", "1", "--strength",
                     "0.5", "--engine", engine, "--out", str(tmp_path / "pairs")])
    assert first.returncode == 0, first.stderr
    assert "5 pairs at 32x32 in 3 shards" in first.stdout and first.stderr.count("written") == 3
    before = dict(np.load(str(tmp_path / "pairs" / "shard-00001.npz")))
    assert before["faces"].shape == (2, 32, 32, 3) and before["toons"].shape == (2, 2, 32, 32, 3)
    assert np.abs(before["faces"].astype(int) - before["toons"][:, 0]).mean() > 10
    (tmp_path / "pairs" / "shard-00001.npz").unlink()  # as if the run had been killed while writing it
    settings = Manifest.read(tmp_path / "pairs").settings
    events = []
    generators = GeneratorPair(backend(engine), ffhq, toon)
    render_pairs(generators, tmp_path / "pairs", settings, lambda *event: events.append(event))
    assert events == [(1, 3, True), (2, 3, False), (3, 3, True)]
    after = dict(np.load(str(tmp_path / "pairs" / "shard-00001.npz")))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="other settings"):
        render_pairs(generators, tmp_path / "pairs", replace(settings, truncation_psi=0.9))
    generator = backend(engine).Generator(describe(pickles.load_generator(ffhq)))
    ws = truncate(broadcast(generator.map(np.random.RandomState(2).randn(1, 512)), generator.spec.num_ws),
                  generator.spec.dlatent_avg, 0.5)
    face = resize(to_uint8(generator.synthesize(ws)), 32)
    assert np.array_equal(face[0], after["faces"][0])  # seed 2 = index 2 = the first pair of shard 1
