"""``python -m app``: checks before it loads anything, goes on past bad files, writes what a user can continue
from, and re-renders saved latents exactly as the service does."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from app.faces.detect import MIN_FACE_PX
from tests.conftest import PHOTOS, REPO, run_cli

# Runs the CLI in a fresh interpreter and reports which frameworks it imported, to prove no model was loaded.
PROBE = ("import sys; from app.cli import main; code = main(sys.argv[1:]); "
         "print('frameworks:', sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'torch'})); "
         "sys.exit(code)")


def _probe(args, **env):
    return subprocess.run([sys.executable, "-c", PROBE] + args, cwd=str(REPO), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **env), timeout=120)


@pytest.mark.parametrize("args, status, message", [
    (["toonify", "--strength", "3", str(PHOTOS / "obama.jpg")], 2, "--strength 3.0: input should be less than"),
    (["toonify", "--steps", "0", "--face", "left", str(PHOTOS / "obama.jpg")], 2, "--face left: face must be"),
    (["toonify", "no-such-photo.jpg"], 1, "no-such-photo.jpg: file not found"),
    (["render", "no-such-face.npy", "--strength", "0.5"], 1, "no-such-face.npy: file not found"),
    (["render", str(PHOTOS / "obama.jpg")], 1, "not a NumPy .npy file"),
])
def test_bad_options_and_files_are_answered_before_any_model_loads(tiny_models, args, status, message):
    result = _probe(args + ["--models", str(tiny_models)])
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert "frameworks: []" in result.stdout and "loading the" not in result.stderr


def test_missing_models_name_the_files_and_the_fix(tmp_path):
    result = _probe(["toonify", str(PHOTOS / "obama.jpg"), "--models", str(tmp_path)])
    assert result.returncode == 2 and "frameworks: []" in result.stdout
    assert "stylegan2-ffhq-config-f.pkl" in result.stderr and "preload.sh" in result.stderr


def test_configuration_errors_name_the_variable():
    result = _probe(["serve"], TOONIFY_PORT="abc")
    assert result.returncode == 2
    assert "TOONIFY_PORT must be a whole number; got 'abc'" in result.stderr


def test_help_shows_defaults_from_the_settings_and_examples():
    result = run_cli(["app", "toonify", "--help"], env_extra={"TOONIFY_DEFAULT_STEPS": "77"})
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(default: 77)" in text and "(default: largest)" in text and "examples:" in text
    assert "python -m app render" in text


def test_version_matches_the_project():
    declared = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    for module in ("app", "stylegan2"):
        result = run_cli([module, "--version"])
        assert result.returncode == 0 and declared in result.stdout


def test_stylegan2_cli_checks_seeds_and_files_first(tmp_path):
    result = run_cli(["stylegan2", "generate", "--pkl", str(tmp_path / "none.pkl"), "--seeds", "0-3",
                      "--out", str(tmp_path)])
    assert result.returncode == 2 and "file not found" in result.stderr and str(tmp_path / "none.pkl") in result.stderr
    (tmp_path / "g.pkl").write_bytes(b"\x80\x04")
    result = run_cli(["stylegan2", "generate", "--pkl", str(tmp_path / "g.pkl"), "--seeds", "abc",
                      "--out", str(tmp_path)])
    assert result.returncode == 2 and "expected seeds like 0-7 or 1,5,9; got 'abc'" in result.stderr


def test_toonify_goes_on_past_bad_photos_and_saves_what_render_continues_from(tmp_path, engine, tiny_models):
    out = tmp_path / "out"
    result = run_cli(["app", "toonify", str(PHOTOS / "two-faces.jpg"), "missing.jpg", str(PHOTOS / "chelsea.png"),
                      "--out", str(out), "--face", "all", "--steps", "3", "--strength", "0.4", "--engine", engine,
                      "--models", str(tiny_models)])
    assert result.returncode == 1  # two photos failed; the one with faces still went through
    assert "missing.jpg: file not found" in result.stderr and "chelsea.png: no face found" in result.stderr
    assert "the face is at least %d px wide" % MIN_FACE_PX in result.stderr  # the detector's real limit
    assert "1 of 3 photo(s) done" in result.stdout
    assert "WARNING:tensorflow" not in result.stderr and "deprecated" not in result.stderr
    folder = out / "two-faces"
    record = json.loads((folder / "result.json").read_text())
    assert [face["index"] for face in record["faces"]] == [0, 1]  # numbered from 0, as the API does
    assert record["options"] == {"face": "all", "steps": 3, "seed": 0, "strength": 0.4}
    assert record["tiny_models"] is True and {"project", "synthesize"} <= set(record["seconds"])
    assert np.asarray(record["faces"][1]["quad"]).shape == (4, 2)
    for face in record["faces"]:
        for kind in ("toon", "reconstruction", "aligned"):
            assert Image.open(str(folder / face["files"][kind])).size == (64, 64)
    assert Image.open(str(folder / "paste.png")).size == (921, 512)
    every = np.load(str(folder / "latents.npy"))
    assert every.shape == (2, 10, 512) and every.dtype == np.float32
    latents = every[1]

    rendered = run_cli(["app", "render", str(folder / "latents.npy"), "--strength", "0.6", "--engine", engine,
                        "--models", str(tiny_models)])
    assert rendered.returncode == 0 and "1 of 1 latents file(s) done" in rendered.stdout, rendered.stderr
    assert (folder / "toon_00-strength0.60.png").is_file()  # every face of the file, named as the result set's
    at_06 = np.asarray(Image.open(str(folder / "toon_01-strength0.60.png")))

    from app.config import Settings
    from app.toonify import Toonify  # what the service's /jobs/{id}/render calls, here in this process

    service = Toonify(Settings(engine=engine, models_dir=tiny_models)).setup()
    np.testing.assert_array_equal(at_06, service.synthesize(latents[None], 0.6)[0])
    at_04 = service.synthesize(latents[None], 0.4)[0]
    toon = np.asarray(Image.open(str(folder / "toon_01.png")))  # rendered in a batch of two: ±1 rounding
    assert np.abs(at_04.astype(int) - toon).max() <= 1 and (at_04 != toon).mean() <= 0.001
    assert np.abs(at_06.astype(int) - at_04).mean() > 1

    from app.faces.decode import decode_image
    from app.faces.paste import paste_faces

    photo = decode_image((PHOTOS / "two-faces.jpg").read_bytes())
    toons = [np.asarray(Image.open(str(folder / face["files"]["toon"]))) for face in record["faces"]]
    quads = [np.asarray(face["quad"]) for face in record["faces"]]
    pasted = np.asarray(Image.open(str(folder / "paste.png"))).astype(int)
    assert np.abs(pasted - paste_faces(photo, toons, quads)).mean() < 0.1  # the 0.4 toons are the ones pasted
    at_10 = [service.synthesize(every[position: position + 1], 1.0)[0] for position in range(len(record["faces"]))]
    assert np.abs(pasted - paste_faces(photo, at_10, quads)).mean() > 0.5


def _listening_addresses(port: int):
    """Local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp: state 0A = LISTEN)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_serve_prints_the_url_listens_on_loopback_and_warns_of_test_models(tmp_path, engine, tiny_models):
    from tests.app.server import end_process, free_port

    port, log = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "TOONIFY_HOST"}
    env.update(PYTHONPATH=str(REPO), TOONIFY_ENGINE=engine, TOONIFY_MODELS_DIR=str(tiny_models),
               TOONIFY_DATA_DIR=str(tmp_path / "data"), TOONIFY_CACHE_DIR=str(tmp_path / "cache"))
    process = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=str(REPO), env=env,
                               stdout=open(str(log), "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _listening_addresses(port) and process.poll() is None:
            time.sleep(0.2)
        assert _listening_addresses(port) == {"127.0.0.1"}, log.read_text()
    finally:
        end_process(process)
    text = log.read_text()
    assert "http://127.0.0.1:%d/ — open it in a browser" % port in text
    assert "tiny random TEST models" in text and "noise" in text
    assert "WARNING:tensorflow" not in text


def _one_line_error(result, status: int = 2) -> str:
    """A refusal's stderr: one line, no traceback, and no framework imported (so no model was loaded)."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "frameworks: []" in result.stdout and "loading the" not in result.stderr
    return result.stderr


def test_same_named_photos_and_latents_get_their_own_results_and_none_is_overwritten(tmp_path, engine, tiny_models):
    for folder, source in (("a", "two-faces.jpg"), ("b", "obama.jpg")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "img.jpg").write_bytes((PHOTOS / source).read_bytes())
    photos, out, models = [str(tmp_path / "a" / "img.jpg"), str(tmp_path / "b" / "img.jpg")], tmp_path / "X", \
        ["--engine", engine, "--models", str(tiny_models)]
    result = run_cli(["app", "toonify"] + photos + ["--out", str(out), "--steps", "2"] + models)
    assert result.returncode == 0 and "2 of 2 photo(s) done" in result.stdout, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["img", "img-2"]  # nothing half-written is left beside them
    for name, photo, size in (("img", photos[0], (921, 512)), ("img-2", photos[1], (910, 1137))):
        record = json.loads((out / name / "result.json").read_text())
        assert record["photo"] == photo and Image.open(str(out / name / "paste.png")).size == size
        assert (out / name / "latents.npy").is_file()

    again = _probe(["toonify"] + photos + ["--out", str(out), "--steps", "2"] + models)
    assert "%s, %s already there: pass --overwrite to replace" % (out / "img", out / "img-2") in _one_line_error(again)

    latents = [str(out / name / "latents.npy") for name in ("img", "img-2")]
    rendered = run_cli(["app", "render"] + latents + ["--strength", "0.5", "--out", str(tmp_path / "R")] + models)
    assert rendered.returncode == 0 and "2 of 2 latents file(s) done" in rendered.stdout, rendered.stderr
    assert sorted(p.name for p in (tmp_path / "R").iterdir()) == [  # the largest face of each photo
        "toon_00-strength0.50-2.png", "toon_00-strength0.50.png"]
    first, second = (np.asarray(Image.open(str(tmp_path / "R" / name)))
                     for name in ("toon_00-strength0.50.png", "toon_00-strength0.50-2.png"))
    assert not np.array_equal(first, second)  # two photos' faces (alike after 2 steps on tiny models), both kept
    again = _probe(["render", latents[0], "--strength", "0.5", "--out", str(tmp_path / "R")] + models)
    assert "toon_00-strength0.50.png already there: pass --overwrite" in _one_line_error(again)

    # paste reads what toonify wrote: the photo and quads from result.json, its toons or re-rendered faces
    pasted = run_cli(["app", "paste", "--faces", str(out / "img-2"), "--out", str(tmp_path / "p.png")])
    assert pasted.returncode == 0, pasted.stderr
    ours, toonifys = (np.asarray(Image.open(str(p))).astype(int)
                      for p in (tmp_path / "p.png", out / "img-2" / "paste.png"))
    assert ours.shape == toonifys.shape and np.abs(ours - toonifys).mean() < 0.1
    pasted = run_cli(["app", "paste", photos[1], "--faces", str(out / "img-2" / "result.json"), "--results",
                      str(tmp_path / "R" / "toon_00-strength0.50-2.png"), "--out", str(tmp_path / "p.png"),
                      "--overwrite"])
    assert pasted.returncode == 0 and "(replaced)" in pasted.stdout, pasted.stderr
    assert np.abs(np.asarray(Image.open(str(tmp_path / "p.png"))).astype(int) - toonifys).mean() > 0.5

    replaced = run_cli(["app", "toonify", photos[1], "--out", str(out), "--steps", "1", "--overwrite"] + models)
    assert replaced.returncode == 0 and "(replaced the earlier result)" in replaced.stdout, replaced.stderr
    record = json.loads((out / "img" / "result.json").read_text())
    assert record["photo"] == photos[1] and record["options"]["steps"] == 1
    assert not (out / "img" / "toon_01.png").exists()  # replaced whole: nothing left of the two-face result
    assert sorted(p.name for p in out.iterdir()) == ["img", "img-2"]


@pytest.mark.parametrize("command", [["toonify", str(PHOTOS / "obama.jpg")], ["render", "latents.npy"],
                                     ["align", str(PHOTOS / "obama.jpg")]])
def test_out_is_checked_before_any_model_loads(tmp_path, tiny_models, command):
    (tmp_path / "file").write_text("not a folder")
    models = ["--models", str(tiny_models)]
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        result = _probe(command + ["--out", str(out)] + models)
        assert "--out %s: %s is a file, not a folder" % (out, tmp_path / "file") in _one_line_error(result)


def test_overwrite_replaces_earlier_results_only(tmp_path, tiny_models):
    (tmp_path / "obama").mkdir()
    (tmp_path / "obama" / "mine.txt").write_text("a user's file, not a result")
    result = _probe(["toonify", str(PHOTOS / "obama.jpg"), "--out", str(tmp_path), "--overwrite",
                     "--models", str(tiny_models)])
    assert "obama: not a toonify result (no result.json or paste.png)" in _one_line_error(result)
    assert (tmp_path / "obama" / "mine.txt").exists()


def test_paste_out_and_faces_are_checked_first(tmp_path):
    (tmp_path / "pasted.png").write_bytes(b"already here")
    for out, message in ((tmp_path, "is a folder: name the image to write"),
                         (tmp_path / "pasted.txt", "not an image file name"),
                         (tmp_path / "pasted.png", "pasted.png already there: pass --overwrite")):
        result = _probe(["paste", str(PHOTOS / "obama.jpg"), "--faces", "faces.json", "--out", str(out)])
        assert message in _one_line_error(result)
    result = _probe(["paste", "--faces", str(tmp_path), "--out", str(tmp_path / "new.png")])
    assert "result.json: file not found (give align's faces.json, or a toonify result" in _one_line_error(result)


def test_align_keeps_same_named_photos_apart_and_paste_finds_each(tmp_path):
    for folder, source in (("a", "two-faces.jpg"), ("b", "obama.jpg")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "img.jpg").write_bytes((PHOTOS / source).read_bytes())
    photos, out = [str(tmp_path / "a" / "img.jpg"), str(tmp_path / "b" / "img.jpg")], tmp_path / "aligned"
    result = run_cli(["app", "align"] + photos + ["--out", str(out), "--size", "128"])
    assert result.returncode == 0 and "2 of 2 photo(s) done" in result.stdout, result.stderr
    report = json.loads((out / "faces.json").read_text())
    assert [f["aligned"] for f in report["img.jpg"]["faces"]] == ["img_00.png", "img_01.png"]
    assert [f["aligned"] for f in report["img-2.jpg"]["faces"]] == ["img-2_00.png"]
    assert report["img-2.jpg"]["photo"] == photos[1]
    pasted = run_cli(["app", "paste", photos[1], "--faces", str(out / "faces.json"), "--results",
                      str(out / "img-2_00.png"), "--out", str(tmp_path / "p.png")])
    assert pasted.returncode == 0, pasted.stderr
    assert Image.open(str(tmp_path / "p.png")).size == (910, 1137)  # obama's photo, not the two-face one
    again = _probe(["align"] + photos + ["--out", str(out)])
    assert "faces.json already there: pass --overwrite" in _one_line_error(again)
