"""FFHQ alignment equals the original's; paste-back inverts it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.faces.align import align_face, face_quad
from app.faces.paste import paste_faces
from tests.conftest import FIXTURES, PHOTOS, run_cli

RECORDED = json.loads((FIXTURES / "alignment" / "alignment.json").read_text())


def _photo(name):
    return np.asarray(Image.open(str(PHOTOS / name)).convert("RGB"))


@pytest.mark.parametrize("name", ["astronaut.png", "obama.jpg"])
def test_aligned_image_matches_original(name):
    face = RECORDED[name]["faces"][0]
    ours = align_face(_photo(name), np.asarray(face["landmarks"], dtype=np.float64)).image
    theirs = np.asarray(Image.open(str(FIXTURES / "alignment" / face["aligned"])).convert("RGB"))
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert ours.shape == (1024, 1024, 3)
    assert diff.mean() <= 1.0 and diff.max() <= 40


def test_output_size_is_configurable():
    face = RECORDED["obama.jpg"]["faces"][0]
    aligned = align_face(_photo("obama.jpg"), np.asarray(face["landmarks"], float), output_size=64)
    assert aligned.image.shape == (64, 64, 3)


def test_quad_is_a_square_around_the_eyes():
    quad = face_quad(np.asarray(RECORDED["obama.jpg"]["faces"][0]["landmarks"], dtype=np.float64))
    sides = [np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]
    assert np.allclose(sides, sides[0])


@pytest.mark.parametrize("name", ["astronaut.png", "obama.jpg"])
def test_pasting_own_crop_back_changes_little_inside_and_nothing_outside(name):
    photo = _photo(name)
    aligned = align_face(photo, np.asarray(RECORDED[name]["faces"][0]["landmarks"], dtype=np.float64))
    pasted = paste_faces(photo, [aligned.image], [aligned.quad])
    diff = np.abs(pasted.astype(int) - photo.astype(int))
    centre = aligned.quad.mean(axis=0)
    side = np.linalg.norm(aligned.quad[3] - aligned.quad[0])
    yy, xx = np.mgrid[: photo.shape[0], : photo.shape[1]]
    distance = np.hypot(xx - centre[0], yy - centre[1])
    assert diff[distance < side * 0.3].mean() <= 2.0
    assert diff[distance > side * 0.75].max() == 0


def test_pasting_a_different_face_shows_inside():
    photo = _photo("obama.jpg")
    aligned = align_face(photo, np.asarray(RECORDED["obama.jpg"]["faces"][0]["landmarks"], dtype=np.float64))
    pasted = paste_faces(photo, [np.full_like(aligned.image, 255)], [aligned.quad])
    centre = aligned.quad.mean(axis=0).astype(int)
    assert (pasted[centre[1], centre[0]] == 255).all()


def test_align_and_paste_cli(tmp_path):
    result = run_cli(["app", "align", "missing.jpg", str(PHOTOS / "two-faces.jpg"), str(PHOTOS / "chelsea.png"),
                      "--out", str(tmp_path), "--size", "256"])
    assert result.returncode == 1 and "chelsea.png: no face found" in result.stderr
    assert "missing.jpg: file not found" in result.stderr and "1 of 3 photo(s) done" in result.stdout
    report = json.loads((tmp_path / "faces.json").read_text())
    assert report["missing.jpg"]["error"]["message"] == "file not found"
    faces = report["two-faces.jpg"]["faces"]
    assert [(f["index"], f["aligned"]) for f in faces] == [(0, "two-faces_00.png"), (1, "two-faces_01.png")]
    assert report["two-faces.jpg"]["size"] == [921, 512] and len(faces[0]["landmarks"]) == 68
    assert report["chelsea.png"]["faces"] == [] and report["chelsea.png"]["error"]["code"] == "no_face"
    results = ",".join(str(tmp_path / f["aligned"]) for f in faces)
    out = tmp_path / "pasted.png"
    pasted = run_cli(["app", "paste", str(PHOTOS / "two-faces.jpg"), "--faces", str(tmp_path / "faces.json"),
                      "--results", results, "--out", str(out)])
    assert pasted.returncode == 0, pasted.stderr
    assert Image.open(str(out)).size == (921, 512)
