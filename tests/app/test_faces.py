"""Real dlib detection on real photos: genuine faces only, landmarks like the original's."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from app.admission import scale_face
from app.errors import NoFaceFound
from app.faces.decode import decode_image, decode_reduced
from app.faces.detect import DETECT_SIDE, FaceDetector, plausibility_problems
from app.jobs.job import AdmittedFace
from app.jobs.runner import detected_faces
from app.toonify import placed_faces
from tests.app.collage import collage, found, turned
from tests.conftest import FIXTURES, PHOTOS


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _faces(detector, name):
    return detector.detect(decode_image((PHOTOS / name).read_bytes()))


@pytest.mark.parametrize("name, count", [("astronaut.png", 1), ("obama.jpg", 1), ("two-faces.jpg", 2),
                                         ("chelsea.png", 0), ("obama-exif-rotated.jpg", 1), ("biden.jpg", 1),
                                         ("obama2.jpg", 1), ("obama3.jpg", 1), ("grace_hopper.jpg", 1)])
def test_face_counts(detector, name, count):
    assert len(_faces(detector, name)) == count


def test_mission_patch_is_seen_but_rejected(detector):
    everything = detector.all_detections(decode_image((PHOTOS / "astronaut.png").read_bytes()))
    patch = [f for f in everything if f.rect[1] > 300 and f.score > 0.05]
    assert patch and patch[0].problems and "score" in patch[0].problems[0]


def test_cat_is_a_no_face_error(detector):
    with pytest.raises(NoFaceFound) as err:
        detector.usable_faces(decode_image((PHOTOS / "chelsea.png").read_bytes()))
    assert err.value.code == "no_face" and "at least" in err.value.message


def test_largest_face_first(detector):
    faces = _faces(detector, "two-faces.jpg")
    assert faces[0].width >= faces[1].width


@pytest.mark.parametrize("name", ["astronaut.png", "obama.jpg"])
def test_eye_and_mouth_landmarks_match_the_original(detector, name):
    recorded = json.loads((FIXTURES / "alignment" / "alignment.json").read_text())[name]["faces"][0]
    ours = _faces(detector, name)[0].landmarks
    theirs = np.asarray(recorded["landmarks"], dtype=np.float64)
    assert np.linalg.norm(ours[36:60] - theirs[36:60], axis=1).mean() <= 2.0


@pytest.mark.parametrize("size", [(4000, 3000), (2400, 1600)])
def test_every_face_of_a_group_photo_is_found(detector, size):
    """Real faces pasted at 60–450 px on large canvases: all found, nothing else. On 4000 px the search
    copy is 2000 px, so 60 px is about the smallest face it promises (40 px at upsample 1)."""
    canvas, boxes = collage(detector, [60, 70, 85, 100, 120, 150, 200, 300, 450], size=size)
    faces = detector.detect(canvas)
    assert found(boxes, [face.rect for face in faces]) == [True] * len(boxes)
    assert len(faces) == len(boxes)


@pytest.mark.parametrize("name, degrees", [("obama.jpg", 40), ("obama.jpg", 50), ("obama.jpg", 55), ("obama.jpg", -50),
                                           ("grace_hopper.jpg", 35), ("biden.jpg", 35), ("astronaut.png", 40)])
def test_a_turned_head_is_kept(detector, name, degrees):
    """Three-quarter views of real faces (eye-to-mouth up to 1.76 eye distances at 55°; a real group photo had
    one at 1.70, dropped by the old filter's 1.6): dlib finds them and alignment can use them."""
    rgb = decode_image((PHOTOS / name).read_bytes())
    faces = detector.detect(turned(rgb, detector.detect(rgb)[0].rect, degrees))
    assert len(faces) == 1


def _obama():
    face = json.loads((FIXTURES / "alignment" / "alignment.json").read_text())["obama.jpg"]["faces"][0]
    return np.asarray(face["landmarks"], dtype=np.float64), face["rect"]


def test_genuine_landmarks_pass_the_geometry_check():
    assert plausibility_problems(*_obama()) == []


@pytest.mark.parametrize("change, problem", [
    (lambda lm, rect: (lm, [rect[0] - 200, rect[1], rect[2] + 200, rect[3]]), "alignment crop"),
    (lambda lm, rect: (lm * [0.1, 1.0], [r * s for r, s in zip(rect, [0.1, 1, 0.1, 1])]), "eye-to-mouth"),
    (lambda lm, rect: (lm * [1.0, 0.3], rect), "eye-to-mouth"),
    (lambda lm, rect: (lm + np.outer(lm[:, 0] - lm[:, 0].mean(), [0.0, 1.5]), rect), "mouth not below"),
])
def test_landmarks_alignment_cannot_use_are_rejected(change, problem):
    """A box that does not fit its landmarks, eyes collapsed onto one point (a profile), a squashed face, or a
    sheared one whose eye line is far from perpendicular to the mouth: each named."""
    problems = plausibility_problems(*change(*_obama()))
    assert any(problem in text for text in problems), problems


class _Counted:
    """The real landmark predictor, counting its calls."""

    def __init__(self, predictor) -> None:
        self.predictor, self.calls = predictor, 0

    def __call__(self, *args):
        self.calls += 1
        return self.predictor(*args)


def _admitted(detector, data: bytes):
    """The faces as the API's admission finds them (app.admission.detect) and a job keeps them."""
    reduced, scale = decode_reduced(data, DETECT_SIDE)
    found = [scale_face(face, scale) for face in detector.usable_faces(reduced)]
    return detected_faces([AdmittedFace.found(face.rect, face.score, face.landmarks) for face in found])


def test_the_worker_uses_admissions_landmarks_when_admission_decoded_the_full_photo(detector, monkeypatch):
    data = (PHOTOS / "two-faces.jpg").read_bytes()
    found, rgb = _admitted(detector, data), decode_image(data)
    assert max(rgb.shape[:2]) <= DETECT_SIDE and len(found) == 2
    counted = _Counted(detector._predictor)
    monkeypatch.setattr(detector, "_predictor", counted)
    placed = placed_faces(rgb, found, detector)
    assert counted.calls == 0
    again = [detector.landmarks(rgb, face.rect) for face in found]  # what the worker used to do
    assert counted.calls == 2
    for face, landmarks in zip(placed, again):
        np.testing.assert_array_equal(face.landmarks, landmarks)  # the same landmarks, so the same crops


def test_a_larger_photo_or_a_disagreeing_decode_gets_its_landmarks_placed_again(detector, monkeypatch):
    photo = Image.open(str(PHOTOS / "two-faces.jpg"))
    larger = io.BytesIO()
    photo.resize((photo.width * 3, photo.height * 3), Image.BILINEAR).save(larger, "PNG")  # 2763 px > DETECT_SIDE
    found, rgb = _admitted(detector, larger.getvalue()), decode_image(larger.getvalue())
    small = (PHOTOS / "two-faces.jpg").read_bytes()
    found_small, turned_small = _admitted(detector, small), np.ascontiguousarray(decode_image(small).transpose(1, 0, 2))
    counted = _Counted(detector._predictor)
    monkeypatch.setattr(detector, "_predictor", counted)
    placed = placed_faces(rgb, found, detector)
    assert counted.calls == 2  # found on a reduced copy: placed again on the full-size photo
    assert max(np.abs(a.landmarks - b.landmarks).max() for a, b in zip(placed, found)) > 0
    placed_faces(turned_small, found_small, detector)
    assert counted.calls == 4  # a decode turned the other way (921 × 512 seen as 512 × 921): placed again
