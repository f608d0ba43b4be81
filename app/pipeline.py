"""The toonify pipeline as one plain function over arrays: decode → faces → align → project → synthesise →
paste. The CLI and the job worker both call it; only its two ends touch bytes."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
from pydantic import BaseModel, Field, field_validator
from typing_extensions import Literal

from stylegan2.projection import DEFAULT_STEPS

from .align import align_face, paste_faces
from .engine import Engine, StepCallback
from .errors import FaceNotFound
from .faces import Face, FaceDetector
from .imaging import ImageLimits, decode_image

OUTPUT_KINDS = ("toon", "paste", "aligned", "reconstruction")
StageCallback = Callable[[str, float], None]  # (stage name, seconds it took)


class ToonifyOptions(BaseModel):
    """What a user may choose per request; validated with messages that say what is allowed. The OpenAPI
    form schema is this model's JSON schema, so the enums, ranges and defaults are documented once."""

    face: str = Field("largest", description="largest, all, or the index of a face (0 = largest)",
                      json_schema_extra={"pattern": "^(largest|all|[0-9]{1,2})$"})
    steps: int = Field(DEFAULT_STEPS, ge=1, le=2000, description="projection steps (the original Toonify uses 500)")
    seed: int = Field(0, ge=0, le=2 ** 31 - 1, description="seed of the projection's noise (face k gets seed + k)")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="1.0 = the original Toonify look, 0.0 = the photo")
    output: Literal["toon", "paste", "aligned", "reconstruction"] = Field(
        "toon", description="the cartoon face, the photo with the face(s) pasted back, the aligned crop, or the "
                            "FFHQ reconstruction (shows whether the projection found the face)")
    format: Literal["png", "jpeg", "webp"] = Field("png", description="image format of the result")

    @field_validator("face")
    @classmethod
    def _face(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("largest", "all") or (value.isdigit() and int(value) < 64):
            return value
        raise ValueError("face must be 'largest', 'all' or a face index from 0 to 63")

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        return value.lower().replace("jpg", "jpeg") if isinstance(value, str) else value

    def projection_key(self) -> str:
        """The options that change the projection (the rest only change how results are rendered)."""
        return "face=%s;steps=%d;seed=%d" % (self.face, self.steps, self.seed)


@dataclass
class ToonifyResult:
    photo: np.ndarray  # RGB uint8, upright
    faces: List[Face]
    aligned: List[np.ndarray]
    quads: List[np.ndarray]
    latents: np.ndarray  # [F, num_ws, 512]
    toons: List[np.ndarray]
    reconstructions: List[np.ndarray]
    pasted: np.ndarray
    stage_seconds: Dict[str, float] = field(default_factory=dict)


def select_faces(faces: List[Face], choice: str) -> List[Face]:
    if choice == "all":
        return list(faces)
    index = 0 if choice == "largest" else int(choice)
    if index >= len(faces):
        raise FaceNotFound("face %d was asked for, but the photo has %d face(s) (0 is the largest)"
                           % (index, len(faces)))
    return [faces[index]]


def render(engine: Engine, latents: np.ndarray, strength: float) -> List[np.ndarray]:
    return list(engine.synthesize(latents, strength))


def toonify(engine: Engine, detector: FaceDetector, data: bytes, options: ToonifyOptions,
            limits: Optional[ImageLimits] = None, on_stage: Optional[StageCallback] = None,
            on_step: Optional[StepCallback] = None, should_cancel: Optional[Callable[[], bool]] = None,
            batch_size: int = 0, faces: Optional[List[Face]] = None) -> ToonifyResult:
    """Photo bytes → cartoon faces (and the rest). Raises the typed errors of app.errors. ``faces``: the
    faces already chosen for this photo (the API detects them when it accepts a job); else detect here."""
    seconds: Dict[str, float] = {}

    def stage(name: str, started: float) -> None:
        seconds[name] = time.perf_counter() - started
        if on_stage is not None:
            on_stage(name, seconds[name])

    started = time.perf_counter()
    photo = decode_image(data, limits)
    stage("decode", started)
    started = time.perf_counter()
    if faces is None:
        faces = select_faces(detector.usable_faces(photo), options.face)
    else:  # found on a reduced copy: landmarks again at full resolution, inside the same boxes
        faces = [Face(face.rect, face.score, detector.landmarks(photo, face.rect)) for face in faces]
    stage("detect", started)
    started = time.perf_counter()
    aligned_faces = [align_face(photo, face.landmarks, engine.resolution) for face in faces]
    aligned = np.stack([a.image for a in aligned_faces])
    stage("align", started)
    started = time.perf_counter()
    all_latents = engine.project_all(aligned, options.steps, options.seed, batch_size, on_step, should_cancel)
    stage("project", started)
    started = time.perf_counter()
    toons = render(engine, all_latents, options.strength)
    reconstructions = render(engine, all_latents, 0.0)
    stage("synthesize", started)
    started = time.perf_counter()
    pasted = paste_faces(photo, toons, [a.quad for a in aligned_faces])
    stage("paste", started)
    return ToonifyResult(photo, faces, list(aligned), [a.quad for a in aligned_faces], all_latents, toons,
                         reconstructions, pasted, seconds)
