"""The product in one object, after the models-serving contract people know (Cog's ``setup()`` once,
``predict()`` many): ``setup()`` loads the generator pair, the perceptual net and the face detector;
``project()`` turns a photo into faces, quads, aligned crops and latents; ``render()`` turns a projection
into images at a toon strength. The CLI, the in-process worker and the RQ workers each hold one; nothing
else threads engines, detectors or limits around.

Nothing about TF sessions, tensors or devices leaks above this object."""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from stylegan2.contracts import Backend
from stylegan2.engines import backend
from stylegan2.errors import EngineUnavailable, ModelError
from stylegan2.memory import bytes_per_face
from stylegan2.model_files import MARKER_FILE, ModelPaths
from stylegan2.projection import ProjectorConfig, StepInfo
from stylegan2.styles import DEFAULT_STYLE
from stylegan2.timings import WARM_UP, phase, recording
from stylegan2.toonifier import Toonifier, default_cache_dir

from .batches import CPU_DEVICE_BYTES, BatchOutOfMemory, BatchPlan
from .config import Settings
from .errors import DeviceOutOfMemory
from .faces.align import align_face
from .faces.decode import ImageLimits, decode_image
from .faces.detect import DETECT_SIDE, Face, FaceDetector, select_faces
from .faces.paste import paste_faces
from .memory import return_freed_memory
from .options import ProjectionOptions, RenderOptions
from .styles import DEFAULT_CATALOG, StyleCatalog, stored_style

CancelCheck = Callable[[], bool]
log = logging.getLogger("toonify")
FACE_DETECTOR = "face detector"  # a phase of setup() (stylegan2.timings)


class Progress:
    """What a caller hears while a photo is projected and rendered. This one hears nothing: the job runner
    and the CLI override what they show."""

    def stage(self, name: str) -> None:
        """A stage starts: decoding, aligning, projecting, synthesizing, pasting."""

    def step(self, info: StepInfo) -> None:
        """A projection step is done (with each face's loss)."""

    def batch_step(self, first_face: int, info: StepInfo) -> None:
        """The same step, of the batch whose first face is ``first_face`` in the photo: ``info.latents()``
        gives that batch's current latents (the job runner's live previews render them now and then)."""

    def timed(self, stage: str, seconds: float) -> None:
        """A stage ended, in this many seconds: decode, detect, align, project, synthesize, paste."""


SILENT = Progress()


class ProjectionCancelled(Exception):
    """The job was cancelled between two projection steps."""


@dataclass
class Projection:
    """A photo's faces in latent space: everything rendering needs, and nothing that depends on how."""

    photo: np.ndarray  # RGB uint8, upright
    faces: List[Face]
    quads: List[np.ndarray]
    aligned: List[np.ndarray]
    latents: np.ndarray  # [F, num_ws, 512]
    stage_seconds: Dict[str, float] = field(default_factory=dict)


@dataclass
class Rendering:
    """A projection's images at one strength: per face the toon and the FFHQ reconstruction, and the photo
    with every toon pasted back."""

    toons: List[np.ndarray]
    reconstructions: List[np.ndarray]
    pasted: np.ndarray
    stage_seconds: Dict[str, float] = field(default_factory=dict)


class _Stages:
    """Announces each stage as it starts, and reports and keeps its time as it ends."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.seconds = progress, {}  # type: Progress, Dict[str, float]
        self._name, self._started = "", 0.0

    def start(self, announced: str, timed: str) -> None:
        self.stop()
        self.progress.stage(announced)
        self._name, self._started = timed, time.perf_counter()

    def stop(self) -> Dict[str, float]:
        if self._name:
            self.seconds[self._name] = time.perf_counter() - self._started
            self.progress.timed(self._name, self.seconds[self._name])
            self._name = ""
        return self.seconds


def placed_faces(rgb: np.ndarray, found: List[Face], detector: FaceDetector) -> List[Face]:
    """Faces the API found when it accepted the job, with landmarks on the full-size photo ``rgb``. The API
    decodes at most DETECT_SIDE pixels on the long side (app.admission): a photo no larger than that was
    decoded there at full size, by the same decoder, so its landmarks are the very ones the predictor would
    place again here (dlib's are whole pixels, stored exactly) and are used as they are, provided they all lie
    on this photo (a decode that disagreed, in size or orientation, would show there). A larger photo was
    detected on a reduced copy: its landmarks are placed again on the full-size photo within the face's box,
    as the original algorithm does."""
    height, width = rgb.shape[:2]

    def on_photo(face: Face) -> bool:
        points = np.asarray(face.landmarks)
        return points.shape == (68, 2) and bool(np.all((points >= 0) & (points < [width, height])))

    if max(height, width) <= DETECT_SIDE and all(on_photo(face) for face in found):
        return list(found)
    return [Face(face.rect, face.score, detector.landmarks(rgb, face.rect)) for face in found]


class Toonify:
    """One per process: the models on one device, behind setup / project / render."""

    def __init__(self, settings: Settings, detector: Optional[FaceDetector] = None) -> None:
        """Cheap: nothing is loaded until setup(). ``detector``: one to share (the API's admission uses the
        same one)."""
        self.settings = settings
        self.paths = ModelPaths.in_dir(settings.models_dir)
        self.limits = ImageLimits.from_settings(settings)
        self.detector = detector
        self.tiny = (settings.models_dir / MARKER_FILE).exists()
        self.load_seconds = 0.0
        self.load_phases: Dict[str, float] = {}  # seconds of setup()'s costly parts (stylegan2.timings)
        self.precision = settings.precision  # resolved by setup(): "auto" becomes what this device runs
        self._models: Optional[Toonifier] = None
        self.styles = DEFAULT_CATALOG  # the served styles with their thumbnails, once setup() rendered them
        self._plan: Optional[BatchPlan] = None
        self._backend: Optional[Backend] = None  # the engine's, imported by setup() (TF or torch loads then)
        self._project_lock = threading.Lock()  # one device: projections run one at a time …
        self._synthesis_lock = threading.Lock()  # … and a re-render never waits for a running projection

    @property
    def engine(self) -> str:
        return self.settings.engine

    @property
    def model_files(self) -> List[str]:
        return [path.name for path in (self.paths.ffhq, self.paths.toon, self.paths.perceptual)]

    @property
    def ready(self) -> bool:
        return self._models is not None

    def missing_models(self) -> Optional[str]:
        """Why setup() cannot work, when model files are missing: known from a look at the folder, before any
        framework loads. Public (/readyz, the page): file names, never the server's paths."""
        missing = self.paths.missing()
        if not missing:
            return None
        return ("the models folder (TOONIFY_MODELS_DIR) has no %s: run ./preload.sh for the real weights (or "
                "`make tiny-models` for test models), then restart" % " or ".join(missing))

    def load_failure(self, exc: Exception) -> str:
        """What went wrong in setup(), for whoever cannot read the server's log: a model file's problem names
        the file and the fix; anything else only its kind (the log has the rest)."""
        if isinstance(exc, (ModelError, EngineUnavailable, OSError)):
            what = str(exc).replace(str(self.settings.models_dir) + os.sep, "")  # file names, not paths
        else:
            what = "%s; the server log has the details" % type(exc).__name__
        return "the models failed to load (%s): fix the models folder (TOONIFY_MODELS_DIR), then restart" % what

    def setup(self) -> "Toonify":
        """Load the models, render once (so ready means the models really render), size the batches."""
        started = time.perf_counter()
        with recording() as self.load_phases:
            if self.detector is None:
                with phase(FACE_DETECTOR):
                    self.detector = FaceDetector(self.settings.models_dir)
            models = Toonifier(self.engine, self.paths, default_cache_dir(self.paths.ffhq, self.settings.cache_dir),
                               self.settings.device or None, self.settings.styles_on_device)
            mean_face = np.repeat(models.w_avg[None, None], models.num_ws, axis=1)
            with phase(WARM_UP):  # the style thumbnails are renders of the same mean face
                warm = models.synthesize(mean_face, 1.0)
                self.styles = StyleCatalog.rendered(models.styles, mean_face, models.synthesize)
        if warm.shape != (1, models.resolution, models.resolution, 3):
            raise RuntimeError("warm-up synthesis returned %s" % (warm.shape,))
        for refusal in models.styles.refused:
            log.warning("%s", refusal)
        self.precision = models.precision(self.settings.precision)
        self._backend = backend(self.engine)
        device_bytes = self.settings.device_memory_bytes or self._backend.free_device_bytes() or CPU_DEVICE_BYTES
        self._plan = BatchPlan(device_bytes, bytes_per_face(models.ffhq_spec, models.perceptual.tap_channels))
        self._models = models
        self.load_seconds = time.perf_counter() - started
        return self

    @property
    def models(self) -> Toonifier:
        if self._models is None:
            raise RuntimeError("Toonify.setup() has not run")
        return self._models

    @property
    def batches(self) -> BatchPlan:
        if self._plan is None:
            raise RuntimeError("Toonify.setup() has not run")
        return self._plan

    @property
    def resolution(self) -> int:
        return self.models.resolution

    @property
    def num_ws(self) -> int:
        return self.models.num_ws

    # -- project ---------------------------------------------------------------------------------------------
    def project(self, photo: bytes, options: ProjectionOptions, progress: Progress = SILENT,
                cancel: Optional[CancelCheck] = None, faces: Optional[List[Face]] = None) -> Projection:
        """Photo bytes → the chosen faces in W+. ``faces``: faces already chosen (the API detects when it
        accepts a job), used as placed_faces() says. Raises the typed errors of app.errors, and
        ProjectionCancelled."""
        resolution, detector = self.resolution, self.detector  # a RuntimeError before setup(), which makes both
        stages = _Stages(progress)
        stages.start("decoding", "decode")
        rgb = decode_image(photo, self.limits)
        return_freed_memory()  # the decoder's full-size frame, before the next stages allocate
        stages.start("aligning", "detect")
        if faces is None:
            faces = select_faces(detector.usable_faces(rgb), options.face)
        else:
            faces = placed_faces(rgb, faces, detector)
        stages.start("aligning", "align")
        aligned = [align_face(rgb, face.landmarks, resolution) for face in faces]
        return_freed_memory()
        stages.start("projecting", "project")
        latents = self.project_aligned(np.stack([a.image for a in aligned]), options, progress, cancel)
        return Projection(rgb, faces, [a.quad for a in aligned], [a.image for a in aligned], latents,
                          stages.stop())

    def _project_batch(self, aligned: np.ndarray, options: ProjectionOptions, first: int, progress: Progress,
                       cancel: Optional[CancelCheck]) -> np.ndarray:
        self.batches.check(len(aligned))
        seeds = [options.seed + first + i for i in range(len(aligned))]

        def on_step(info: StepInfo) -> None:
            progress.step(info)
            progress.batch_step(first, info)

        try:
            with self._project_lock:
                config = ProjectorConfig(steps=options.steps, precision=self.precision)
                result = self.models.project(aligned, seeds, config, on_step, cancel)
        except Exception as exc:
            if self._backend.is_out_of_memory(exc):
                raise BatchOutOfMemory(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            raise
        if result.cancelled:
            raise ProjectionCancelled()
        return result.latents

    def project_aligned(self, aligned: np.ndarray, options: ProjectionOptions, progress: Progress = SILENT,
                        cancel: Optional[CancelCheck] = None) -> np.ndarray:
        """Aligned crops uint8 [F, R, R, 3] → W+ latents [F, num_ws, 512], in batches that fit; a batch that
        runs out of device memory is split in halves and retried. Face k always gets seed + k, whatever the
        batching."""
        def batch(first: int, size: int) -> np.ndarray:
            return self._project_batch(aligned[first: first + size], options, first, progress, cancel)

        try:
            return np.concatenate(self.batches.run(len(aligned), self.settings.batch_size, batch))
        except BatchOutOfMemory as exc:
            raise DeviceOutOfMemory("one face does not fit in the GPU's memory (%s); the server needs a larger GPU "
                                    "or fewer other processes on it" % exc) from None

    # -- render ----------------------------------------------------------------------------------------------
    def synthesize(self, latents: np.ndarray, strength: float = 1.0, style: str = DEFAULT_STYLE) -> np.ndarray:
        """uint8 [B, R, R, 3]; 1.0 = the style (by default the blended model, Toonify), 0.0 = the FFHQ
        reconstruction. InvalidOption for a style this server does not have."""
        self.styles.check(style, every_allowed=False)
        with self._synthesis_lock:
            return self.models.synthesize(np.asarray(latents, np.float32), strength, style)

    def render(self, projection: Projection, options: RenderOptions, progress: Progress = SILENT,
               keep_photo: bool = True) -> Rendering:
        """The toons in ``options.style`` (the default one for 'all': a job stores one set of images) at
        ``options.strength``, the reconstructions, and the photo with the toons pasted back. (``output`` and
        ``format`` choose among and encode these images; app.rendering, app.cli.) ``keep_photo=False``:
        paste onto the projection's photo itself, for a caller that needs the photo no more (a job): one
        full-size copy of it fewer."""
        stages = _Stages(progress)
        stages.start("synthesizing", "synthesize")
        toons = list(self.synthesize(projection.latents, options.strength, stored_style(options)))
        reconstructions = list(self.synthesize(projection.latents, 0.0))
        stages.start("pasting", "paste")
        pasted = paste_faces(projection.photo, toons, projection.quads, in_place=not keep_photo)
        return_freed_memory()  # the paste's strips, before the pasted photo is encoded
        return Rendering(toons, reconstructions, pasted, stages.stop())
