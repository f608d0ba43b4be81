"""Face detection and 68-point landmarks with dlib, with false detections filtered out.

The original Toonify pipeline aligned every dlib detection, including a mission patch on the astronaut
photo (score 0.12 at upsample 1). Real faces, even small ones in crowded group photos, score ≳ 0.3, so we
keep detections above a score threshold whose landmarks also have a plausible face geometry.
"""
from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import dlib
import numpy as np
from PIL import Image

from ..errors import FaceNotFound, FaceTooSmall, NoFaceFound
from .align import face_quad

LANDMARK_FILE = "shape_predictor_68_face_landmarks.dat"
MIN_SCORE = 0.2
MIN_FACE_PX = 48  # dlib box width in photo pixels below which a face is too small to align usefully
# Every photo is searched as the original does, at upsample 1 (faces from ~40 px of the searched image), on a
# copy no larger than DETECT_SIDE: photos up to that size exactly as the original, larger ones from faces of
# ~40 × side / DETECT_SIDE px (80 px on a 4000-px photo). See bench/faces.py for the cost.
DETECT_SIDE = 2000
DETECT_UPSAMPLE = 1
# Landmark geometry FFHQ alignment can use. The side of its crop square over the detector's box width: 1.26 to
# 2.06 on genuine faces, frontal or turned up to 55°. Eye-to-mouth over eye distance: ~1.0 frontal, growing as
# 1/cos(yaw) when the head turns (1.7 at three-quarters); 2.5 is a yaw of ~65°, past the frontal detector's
# reach, where the eyes' landmarks no longer give a usable eye line.
CROP_TO_BOX = (1.1, 2.6)
MOUTH_TO_EYES = (0.5, 2.5)


@dataclass
class Face:
    """One detected face in photo coordinates."""

    rect: List[int]  # [left, top, right, bottom]
    score: float
    landmarks: np.ndarray  # [68, 2] float (x, y)
    problems: List[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.rect[2] - self.rect[0]

    def to_json(self) -> dict:
        return {"rect": [int(v) for v in self.rect], "score": round(float(self.score), 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]}


def landmark_model_path(models_dir: Optional[Path] = None) -> Path:
    """``models/shape_predictor_68_face_landmarks.dat`` if present, else the copy shipped by the PyPI package
    face-recognition-models, found without importing it (its __init__ needs pkg_resources)."""
    if models_dir is not None and (Path(models_dir) / LANDMARK_FILE).is_file():
        return Path(models_dir) / LANDMARK_FILE
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARK_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("%s not found: install face-recognition-models or put it in the models directory"
                            % LANDMARK_FILE)


def plausibility_problems(landmarks: np.ndarray, rect: Sequence[int]) -> List[str]:
    """Whether FFHQ alignment can use these landmarks: the square it would crop (spec §5) agrees in size with
    the detector's box, and the eye line and the eye-to-mouth line, which together set its rotation, are
    roughly perpendicular. A turned head keeps both: its eye distance shrinks, but the crop is then sized by
    the eye-to-mouth distance, which stays (see tests/fixtures/README.md for the values on real photos)."""
    width = max(rect[2] - rect[0], 1)
    eye_left, eye_right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    mouth = (landmarks[48] + landmarks[54]) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - (eye_left + eye_right) / 2
    eye_distance, mouth_distance = np.linalg.norm(eye_to_eye), np.linalg.norm(eye_to_mouth)
    quad = face_quad(landmarks)
    crop_share = np.linalg.norm(quad[3] - quad[0]) / width
    problems = []
    if not CROP_TO_BOX[0] <= crop_share <= CROP_TO_BOX[1]:
        problems.append("alignment crop %.2f of the box width" % crop_share)
    if not MOUTH_TO_EYES[0] <= mouth_distance / max(eye_distance, 1e-6) <= MOUTH_TO_EYES[1]:
        problems.append("eye-to-mouth %.2f of the eye distance" % (mouth_distance / max(eye_distance, 1e-6)))
    cos = float(np.dot(eye_to_eye, eye_to_mouth) / max(eye_distance * mouth_distance, 1e-6))
    if abs(cos) > 0.5:
        problems.append("mouth not below the eyes (cos %.2f)" % cos)
    return problems


class FaceDetector:
    """dlib's frontal detector + the 68-point shape predictor, loaded once."""

    def __init__(self, models_dir: Optional[Path] = None, min_score: float = MIN_SCORE,
                 min_face_px: int = MIN_FACE_PX) -> None:
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(landmark_model_path(models_dir)))
        self.min_score = min_score
        self.min_face_px = min_face_px
        self._lock = threading.Lock()  # request handlers and the worker share one detector

    def _detect(self, rgb: np.ndarray):
        """Detections at upsample 1 (on a downscaled copy for photos over DETECT_SIDE), boxes in photo
        coordinates. A single pass at a coarser scale missed the small faces of group photos."""
        height, width = rgb.shape[:2]
        scale, upsample, small = 1.0, DETECT_UPSAMPLE, rgb
        if max(height, width) > DETECT_SIDE:
            scale = DETECT_SIDE / float(max(height, width))
            size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        rects, scores, _ = self._detector.run(small, upsample, -0.5)
        for rect, score in zip(rects, scores):
            box = [int(math.floor(rect.left() / scale)), int(math.floor(rect.top() / scale)),
                   int(math.ceil(rect.right() / scale)), int(math.ceil(rect.bottom() / scale))]
            yield box, score

    def all_detections(self, rgb: np.ndarray) -> List[Face]:
        """Every dlib detection with its landmarks and the reasons it would be rejected (largest first)."""
        rgb = np.ascontiguousarray(rgb)
        faces = []
        with self._lock:
            detections = list(self._detect(rgb))
            shapes = [self._predictor(rgb, dlib.rectangle(*box)) for box, _ in detections]
        for (box, score), shape in zip(detections, shapes):
            landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            problems = plausibility_problems(landmarks, box)
            if score < self.min_score:
                problems.insert(0, "detector score %.2f below %.2f" % (score, self.min_score))
            faces.append(Face(box, float(score), landmarks, problems))
        faces.sort(key=lambda f: f.width, reverse=True)
        return faces

    def landmarks(self, rgb: np.ndarray, rect: Sequence[int]) -> np.ndarray:
        """The 68 landmarks inside a known box: the API finds faces on a reduced copy of a large photo, and
        the worker places their landmarks on the full-resolution photo, as the original algorithm does."""
        with self._lock:
            shape = self._predictor(np.ascontiguousarray(rgb), dlib.rectangle(*[int(v) for v in rect]))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def detect(self, rgb: np.ndarray) -> List[Face]:
        """Genuine faces, largest first (too-small faces included; callers decide, see usable())."""
        return [face for face in self.all_detections(rgb) if not face.problems]

    def usable_faces(self, rgb: np.ndarray) -> List[Face]:
        """Genuine faces big enough to toonify, largest first; a typed error when there are none."""
        faces = self.detect(rgb)
        usable = [face for face in faces if face.width >= self.min_face_px]
        if usable:
            return usable
        if faces:
            raise FaceTooSmall("the face is only %d px wide; it must be at least %d px — use a closer or larger photo"
                               % (faces[0].width, self.min_face_px))
        raise NoFaceFound("no face found — use a photo where the face is at least %d px wide, well lit and looking "
                          "at the camera" % self.min_face_px)


def select_faces(faces: List[Face], choice: str) -> List[Face]:
    """The faces a request's ``face`` option picks: all, the largest, or the one at an index (largest first)."""
    if choice == "all":
        return list(faces)
    index = 0 if choice == "largest" else int(choice)
    if index >= len(faces):
        raise FaceNotFound("face %d was asked for, but the photo has %d face(s) (0 is the largest)"
                           % (index, len(faces)))
    return [faces[index]]
