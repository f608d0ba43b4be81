"""Live previews of a running projection: now and then the worker renders the current latents small (the toon
in the job's style and strength, and the FFHQ reconstruction) and stores them with the job, where the API
serves them (``GET /jobs/{id}/preview``) and announces them (the ``preview`` event, the view's ``preview``).

A preview costs two syntheses, which on a CPU take as long as a step or more; so previews come every
``TOONIFY_PREVIEW_EVERY_S`` seconds of projection, and never more often than keeps their own time under
PREVIEW_SHARE of it, whatever the model, device and batch (bench/previews.py measures it)."""
from __future__ import annotations

import logging
import time
from typing import Callable, Dict, List, Optional, Set

import numpy as np
from PIL import Image
from typing_extensions import Literal, get_args

from stylegan2.projection import StepInfo

from ..encoding import encode_pil
from .job import PREVIEW_PREFIX
from .store import JobStore

log = logging.getLogger("toonify.jobs")

PreviewKind = Literal["toon", "reconstruction"]
PREVIEW_KINDS = get_args(PreviewKind)
PREVIEW_SIDE = 256  # pixels of a preview image (square, JPEG)
PREVIEW_QUALITY = 85
PREVIEW_SHARE = 0.04  # the most of the projection's time previews may take (issue 27: under 5 %)
Synthesize = Callable[[np.ndarray, float], np.ndarray]  # (latents, strength) → uint8 [B, R, R, 3]


def preview_file(face: int, kind: str) -> str:
    """The job file that holds a face's latest preview of one kind (overwritten by each new preview)."""
    return "%s%02d_%s.jpg" % (PREVIEW_PREFIX, face, kind)


def preview_link(job_id: str, face: int, kind: str, step: int) -> str:
    """``step`` tells one preview's link from the next (browsers and caches load the new image)."""
    return "/jobs/%s/preview?face=%d&kind=%s&step=%d" % (job_id, face, kind, step)


def small_jpeg(rgb: np.ndarray) -> bytes:
    """An RGB face → a PREVIEW_SIDE² JPEG (box-filtered down from a larger model, bilinear up from a tiny one)."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    resample = Image.BOX if image.width > PREVIEW_SIDE else Image.BILINEAR
    return encode_pil(image.resize((PREVIEW_SIDE, PREVIEW_SIDE), resample), "jpeg", PREVIEW_QUALITY)


def render_preview(latents: np.ndarray, strength: float, synthesize: Synthesize, first_face: int = 0
                   ) -> Dict[str, bytes]:
    """The preview files of a batch of faces (``first_face`` is the batch's first face in the photo): each
    face's toon at ``strength`` and its reconstruction (strength 0), as the final results will be rendered."""
    files = {}
    for kind, images in (("toon", synthesize(latents, strength)), ("reconstruction", synthesize(latents, 0.0))):
        for index, rgb in enumerate(images):
            files[preview_file(first_face + index, kind)] = small_jpeg(rgb)
    return files


def preview_record(step: int, total: int, faces: List[int]) -> Dict[str, object]:
    """What a job records of its latest preview (the view adds the links)."""
    return {"step": step, "total": total, "faces": sorted(faces)}


class PreviewClock:
    """When the next preview is due: ``every_s`` seconds of projection after the last one ended (or after the
    first step), and at least cost / PREVIEW_SHARE after it, where cost is what the last preview took. Before
    the worker's first preview, a step's time stands in for the cost (a preview is two syntheses; a step is a
    synthesis forward and backward and the perceptual net's)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.perf_counter,
                 cost_s: Optional[float] = None) -> None:
        """``cost_s``: what a preview took last time, if known (the worker's last job)."""
        self.every_s, self.clock = every_s, clock
        self.cost_s = cost_s
        self.step_s = 0.0
        self._since: Optional[float] = None
        self._last: Optional[float] = None

    @property
    def interval_s(self) -> float:
        return max(self.every_s, (self.step_s if self.cost_s is None else self.cost_s) / PREVIEW_SHARE)

    def due(self) -> bool:
        """Called once a step."""
        now = self.clock()
        if self._since is None:
            self._since = now
        elif self._last is not None:
            self.step_s = now - self._last
        self._last = now
        return now - self._since >= self.interval_s

    def timed(self, render: Callable[[], None]) -> None:
        """Run ``render`` (a preview), keeping its cost; the next interval starts when it ends."""
        started = self.clock()
        render()
        self._since = self._last = self.clock()
        self.cost_s = self._since - started


class PreviewPace:
    """How often one worker previews: every ``every_s`` seconds of projection (0: never), and what it remembers
    of its previews across jobs, the least a preview took, its first one aside (a job's first preview keeps its
    share). The worker's first preview builds graphs and kernels (seconds, once), and one may be slowed by load:
    remembered, either would push every later job's previews past its end. Each worker context holds its own
    (app.jobs.runner.WorkerContext)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last_cost_s: Optional[float] = None
        self.warmed_up = False

    def remember(self, cost_s: Optional[float]) -> bool:
        """Keep a preview's cost; False for the warm-up, whose cost says nothing of the next preview's."""
        if not self.warmed_up:
            self.warmed_up = True
            return False
        least = self.last_cost_s
        self.last_cost_s = cost_s if least is None or cost_s is None else min(least, cost_s)
        return True


class JobPreviews:
    """One job's live previews: rendered from the batch's latents when the clock says so, then stored with the
    job. A preview that fails is logged and ends the job's previews, never the job."""

    def __init__(self, store: JobStore, job_id: str, pace: PreviewPace, strength: float, synthesize: Synthesize,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.store, self.job_id, self.strength, self.synthesize = store, job_id, strength, synthesize
        self.pace = pace
        self.clock = PreviewClock(pace.every_s, clock, pace.last_cost_s) if pace.every_s > 0 else None
        self.faces: Set[int] = set()

    def after_step(self, first_face: int, info: StepInfo) -> None:
        if self.clock is None or info.latents is None or not self.clock.due():
            return
        try:
            self.clock.timed(lambda: self._publish(first_face, info))
            if not self.pace.remember(self.clock.cost_s):
                self.clock.cost_s = None
        except Exception:
            log.exception("job %s: a live preview failed; the job goes on without previews", self.job_id)
            self.clock = None

    def _publish(self, first_face: int, info: StepInfo) -> None:
        latents = info.latents()
        files = render_preview(latents, self.strength, self.synthesize, first_face)
        self.faces.update(range(first_face, first_face + len(latents)))
        self.store.publish_preview(self.job_id, preview_record(info.step, info.total, sorted(self.faces)), files)
