"""Fast mode (issue #18): decode → detect → align → student → paste, with a distilled image-to-image student
instead of 500 projection steps. A second method beside the faithful projection path, never a silent
substitute: it runs only when asked for (method=fast) and only when ``models/toonify-student.npz`` exists.
A student is only as good as its training run (README, "Fast mode")."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from stylegan2.contracts import StudentNetwork
from stylegan2.engines import backend
from stylegan2.model_files import STUDENT_FILE
from stylegan2.student import load_student

from .config import Settings
from .errors import InvalidOption, ToonifyError
from .faces.align import TRANSFORM_SIZE, align_face
from .faces.decode import ImageLimits, decode_image
from .faces.detect import Face, FaceDetector, select_faces
from .faces.paste import paste_faces
from .options import ToonifyOptions

log = logging.getLogger("toonify.fast")
StageCallback = Callable[[str, float], None]
FAST_OUTPUTS = ("toon", "paste", "aligned")
# The FFHQ aligner warps at 4096² and then downsamples; 4× the output side is as anti-aliased to the eye and,
# at 512², a quarter of the pixels (the warp was most of a fast request's time).
ALIGN_SUPERSAMPLING = 4


class FastModeUnavailable(ToonifyError):
    """method=fast was asked for, but this server has no (loadable) student."""

    code = "fast_unavailable"


class FastOptionUnsupported(InvalidOption):
    """An option the loaded student cannot honour (e.g. a strength it was not trained for)."""


@dataclass
class FastResult:
    faces: List[Face]
    aligned: List[np.ndarray]
    toons: List[np.ndarray]
    pasted: np.ndarray
    stage_seconds: Dict[str, float] = field(default_factory=dict)

    def image(self, output: str) -> np.ndarray:
        """The first face's toon / aligned crop, or the photo with every toon pasted back."""
        return {"toon": lambda: self.toons[0], "aligned": lambda: self.aligned[0],
                "paste": lambda: self.pasted}[output]()


def check_options(student: StudentNetwork, options: ToonifyOptions) -> None:
    if options.output not in FAST_OUTPUTS:
        raise FastOptionUnsupported("output=%s is not available with method=fast (it has no latents); choose %s"
                                    % (options.output, ", ".join(FAST_OUTPUTS)))
    if not student.spec.takes_strength and options.strength != 1.0:
        raise FastOptionUnsupported("this student was trained at strength 1.0 only; use strength=1 or "
                                    "method=project")


class FastMode:
    """The student of one models directory, loaded in the background (so liveness never waits for it), and
    the fast pipeline around it: the fast counterpart of app.toonify.Toonify."""

    def __init__(self, settings: Settings, detector: FaceDetector) -> None:
        """``detector``: shared with the rest of the process."""
        self.engine, self.device = settings.engine, settings.device or None
        self.path = Path(settings.models_dir) / STUDENT_FILE
        self.limits, self.detector = ImageLimits.from_settings(settings), detector
        self.student: Optional[StudentNetwork] = None
        self.error: Optional[str] = None
        self.loaded = threading.Event()

    def start(self) -> "FastMode":
        threading.Thread(target=self.load, name="toonify-student-loader", daemon=True).start()
        return self

    def load(self) -> "FastMode":
        try:
            if self.path.exists():
                spec = load_student(self.path)
                student = backend(self.engine).Student(spec, self.device)
                side = spec.resolution
                student.toonify(np.zeros([1, side, side, 3], np.uint8))  # warm-up: ready means it runs
                self.use(student)
                log.info("fast mode: student %s (%d px, %d parameters)", self.path, side, spec.num_params)
        except Exception as exc:  # readiness reports it; projection keeps working
            log.exception("loading the fast-mode student failed")
            self.error = "%s: %s" % (type(exc).__name__, exc)
        finally:
            self.loaded.set()
        return self

    def use(self, student: StudentNetwork) -> "FastMode":
        """Serve this student (loaded from the models directory, or built by a caller such as a benchmark)."""
        self.student = student
        self.loaded.set()
        return self

    def require(self) -> StudentNetwork:
        """The loaded student, or FastModeUnavailable with what to do about it."""
        if self.student is not None:
            return self.student
        if not self.loaded.is_set():
            raise FastModeUnavailable("the fast-mode student is still loading; try again in a few seconds")
        if self.error:
            raise FastModeUnavailable("method=fast is unavailable: the student file %s could not be loaded (%s); "
                                      "use method=project" % (self.path.name, self.error))
        raise FastModeUnavailable("method=fast is unavailable: this server has no student model (%s in the models "
                                  "directory; train one with 'python -m app distill'); use method=project"
                                  % self.path.name)

    def readiness(self) -> Dict[str, Any]:
        student = self.student
        if student is None:
            reason = ("loading" if not self.loaded.is_set() else self.error
                      or "no %s in the models directory" % self.path.name)
            return {"available": False, "reason": reason}
        meta = student.spec.meta
        return {"available": True, "file": self.path.name, "resolution": student.spec.resolution,
                "parameters": student.spec.num_params, "strength_input": student.spec.takes_strength,
                "trained_steps": meta.get("trained_steps")}

    def toonify(self, data: bytes, options: ToonifyOptions, on_stage: Optional[StageCallback] = None) -> FastResult:
        """Photo bytes → toons by the student; the same typed errors as the projection path."""
        student = self.require()
        check_options(student, options)
        seconds: Dict[str, float] = {}
        started = time.perf_counter()

        def stage(name: str) -> None:
            nonlocal started
            seconds[name] = time.perf_counter() - started
            if on_stage is not None:
                on_stage(name, seconds[name])
            started = time.perf_counter()

        photo = decode_image(data, self.limits)
        stage("decode")
        faces = select_faces(self.detector.usable_faces(photo), options.face)
        stage("detect")
        side = student.spec.resolution
        aligned = [align_face(photo, face.landmarks, side, min(TRANSFORM_SIZE, ALIGN_SUPERSAMPLING * side))
                   for face in faces]
        stage("align")
        toons = list(student.toonify(np.stack([a.image for a in aligned]), options.strength))
        stage("student")
        pasted = paste_faces(photo, toons, [a.quad for a in aligned]) if options.output == "paste" else photo
        stage("paste")
        return FastResult(faces, [a.image for a in aligned], toons, pasted, seconds)
