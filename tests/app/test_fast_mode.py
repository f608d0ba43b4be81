"""Fast mode end to end on the tiny models: pairs → training (torch) → a student that learned the toon →
method=fast through real uvicorn in this engine; resume after a kill; the --eval report."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.faces.align import align_face
from app.faces.decode import decode_image
from app.faces.detect import FaceDetector
from stylegan2.engines import backend
from stylegan2.model_files import STUDENT_FILE
from stylegan2.pair_data import PairData
from stylegan2.student import load_student
from tests.app.server import Server, end_process
from tests.conftest import PHOTOS, REPO, run_cli

TORCH_PYTHON = REPO / ".venv" / "torch" / "bin" / "python"
HOLDOUT = 24
# Small enough for a loaded 2-core CPU; deep enough (8² bottleneck at 64²) to see the whole face.
TRAIN_ARGS = ["--channels", "8,16,32,32", "--batch", "4", "--lr", "2e-3", "--holdout", str(HOLDOUT),
              "--log-steps", "10"]


def _distill(args, **kwargs) -> subprocess.Popen:
    """``python -m app distill`` in the torch venv (training needs torch, whichever engine serves)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), TOONIFY_DEVICE="cpu")
    return subprocess.Popen([str(TORCH_PYTHON), "-m", "app", "distill"] + [str(a) for a in args], cwd=str(REPO),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.fixture(scope="module")
def pairs(engine, tiny_models, tmp_path_factory) -> Path:
    if not TORCH_PYTHON.exists():
        pytest.skip("training needs the torch venv")
    out = tmp_path_factory.mktemp("pairs")
    result = run_cli(["stylegan2", "pairs", "--ffhq", str(tiny_models / "stylegan2-ffhq-config-f.pkl"),
                      "--toon", str(tiny_models / "ffhq-cartoon-blended-64.pkl"), "--count", "224", "--psi", "0.6",
                      "--resolution", "64", "--shard-size", "112", "--engine", engine, "--out", str(out)])
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def run_dir(pairs, tiny_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "run"
    process = _distill(["--pairs", pairs, "--resolution", "64", "--out", out, "--models", tiny_models,
                        "--steps", "120", "--checkpoint-steps", "60", "--lpips-weight", "0.5"] + TRAIN_ARGS)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    return out


def test_student_learned_the_toon(run_dir, pairs, engine):
    """On held-out latents the student is at most half as far from the teacher's toon as the input face."""
    held = PairData(pairs, HOLDOUT).held_out()
    faces, toons = held["faces"], held["toons"][:, 0].astype(np.float32)
    student = backend(engine).Student(load_student(run_dir / "student.npz"))
    student_l1 = np.abs(student.toonify(faces).astype(np.float32) - toons).mean()
    input_l1 = np.abs(faces.astype(np.float32) - toons).mean()
    assert student_l1 <= 0.5 * input_l1, (student_l1, input_l1)
    log = (run_dir / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,seconds,l1,lpips") and len(log) == 1 + 12
    assert float(log[-1].split(",")[3]) > 0  # LPIPS was part of the loss
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step-0000060.png", "step-0000120.png"]


def _train_args(out: Path, pairs: Path, models: Path):
    return ["--pairs", pairs, "--out", out, "--models", models, "--steps", "40", "--checkpoint-steps", "20",
            "--lpips-weight", "0"] + TRAIN_ARGS


def test_resume_after_kill_continues_the_same_run(pairs, tiny_models, tmp_path):
    """SIGKILL after the first checkpoint, start again: it resumes there and ends with the very weights of a
    run that was never interrupted (same data stream, optimiser state and random state)."""
    process = _distill(_train_args(tmp_path / "killed", pairs, tiny_models))
    try:
        deadline = time.monotonic() + 600
        while not (tmp_path / "killed" / "run.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.05)
    finally:
        end_process(process, graceful=False)
    killed_at = json.loads((tmp_path / "killed" / "run.json").read_text())["step"]
    assert killed_at == 20
    resumed = _distill(_train_args(tmp_path / "killed", pairs, tiny_models))
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming %s at step 20" % (tmp_path / "killed") in output
    steps = [int(line.split(",")[0]) for line in (tmp_path / "killed" / "log.csv").read_text().splitlines()[1:]]
    assert steps == [10, 20, 30, 40]  # no step lost or logged twice
    straight = _distill(_train_args(tmp_path / "straight", pairs, tiny_models))
    output, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, output
    killed = load_student(tmp_path / "killed" / "student.npz").weights
    uninterrupted = load_student(tmp_path / "straight" / "student.npz").weights
    assert all(np.allclose(killed[k], uninterrupted[k], atol=1e-5) for k in killed)

    def losses(run: str):
        return [float(line.split(",")[2]) for line in (tmp_path / run / "log.csv").read_text().splitlines()[1:]]

    assert np.allclose(losses("killed"), losses("straight"), rtol=1e-4)


def test_eval_report(run_dir, pairs, tiny_models, engine, tmp_path):
    result = run_cli(["app", "distill", "--eval", "--pairs", str(pairs), "--holdout", str(HOLDOUT), "--student",
                      str(run_dir / "student.npz"), "--models", str(tiny_models), "--count", "2", "--steps", "10",
                      "--engine", engine, "--out", str(tmp_path / "report")])
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["held_out"] == 2 and report["projection_steps"] == 10
    assert report["student"]["l1"] < report["input_face"]["l1"]
    assert 0 < report["projection"]["lpips"]
    assert Image.open(str(tmp_path / "report" / "side-by-side.png")).size == (4 * 64, 2 * 64)
    assert "projection path" in result.stdout


@pytest.fixture(scope="module")
def fast_server(run_dir, tiny_models, engine, tmp_path_factory):
    models = tmp_path_factory.mktemp("models-with-student")
    for item in tiny_models.iterdir():
        if item.is_file():
            shutil.copy(str(item), str(models / item.name))
    shutil.copy(str(run_dir / "student.npz"), str(models / STUDENT_FILE))
    root = tmp_path_factory.mktemp("fast-service")
    server = Server(engine, models, root / "data", root / "cache").start()
    yield server, models
    server.stop()


def _photo(name: str):
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


def test_method_fast_returns_the_students_toon(fast_server, engine):
    server, models = fast_server
    with server.client() as client:
        ready = client.get("/readyz").json()
        assert ready["fast"]["available"] and ready["fast"]["resolution"] == 64
        response = client.post("/toonify", files=_photo("astronaut.png"), data={"method": "fast"})
        assert response.status_code == 200, response.text
        assert response.headers["x-toonify-method"] == "fast"
        toon = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        paste = client.post("/toonify", files=_photo("astronaut.png"), data={"method": "fast", "output": "paste"})
        assert paste.status_code == 200 and Image.open(io.BytesIO(paste.content)).size == (512, 512)
        bad = client.post("/toonify", files=_photo("astronaut.png"), data={"method": "fast", "strength": "0.5"})
        assert bad.status_code == 422 and "strength 1.0 only" in bad.json()["message"]
        no_face = client.post("/toonify", files={"image": ("x.png", _blank_png(), "image/png")},
                              data={"method": "fast"})
        assert no_face.status_code == 422 and no_face.json()["code"] == "no_face"
        assert client.post("/toonify", files=_photo("astronaut.png"), data={"method": "magic"}).status_code == 422
        metrics = client.get("/metrics").text
        assert 'toonify_fast_requests_total{outcome="ok"} 2.0' in metrics
    photo = decode_image((PHOTOS / "astronaut.png").read_bytes())
    face = FaceDetector(models).usable_faces(photo)[0]
    aligned = align_face(photo, face.landmarks, 64, 4 * 64).image
    expected = backend(engine).Student(load_student(models / STUDENT_FILE)).toonify(aligned[None])
    assert np.array_equal(toon, expected[0])
    assert np.abs(toon.astype(int) - aligned).mean() > 5  # the student's toon, not the aligned photo


def _blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 130, 140)).save(buffer, "PNG")
    return buffer.getvalue()


def test_method_fast_without_a_student_says_so(engine, tiny_models, tmp_path):
    server = Server(engine, tiny_models, tmp_path / "data", tmp_path / "cache").start()
    try:
        with server.client() as client:
            assert client.get("/readyz").json()["fast"]["available"] is False
            response = client.post("/toonify", files=_photo("astronaut.png"), data={"method": "fast"})
            assert response.status_code == 409 and response.json()["code"] == "fast_unavailable"
            assert "python -m app distill" in response.json()["message"]
            assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()


def test_cli_method_fast_writes_the_students_toon(fast_server, engine, tmp_path):
    _, models = fast_server
    result = run_cli(["app", "toonify", str(PHOTOS / "astronaut.png"), "--out", str(tmp_path), "--method", "fast",
                      "--models", str(models), "--engine", engine])
    assert result.returncode == 0, result.stderr
    assert "fast mode" in result.stdout
    toon = np.asarray(Image.open(str(tmp_path / "astronaut" / "toon_00.png")))
    photo = decode_image((PHOTOS / "astronaut.png").read_bytes())
    face = FaceDetector(models).usable_faces(photo)[0]
    expected = backend(engine).Student(load_student(models / STUDENT_FILE)).toonify(
        align_face(photo, face.landmarks, 64, 4 * 64).image[None])
    assert np.array_equal(toon, expected[0])
    assert Image.open(str(tmp_path / "astronaut" / "paste.png")).size == (512, 512)
    missing = run_cli(["app", "toonify", str(PHOTOS / "astronaut.png"), "--out", str(tmp_path / "again"),
                       "--method", "fast", "--engine", engine, "--models", str(tmp_path)])
    assert missing.returncode == 2 and "no student model" in missing.stderr
