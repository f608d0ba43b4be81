"""Engine-neutral parts of the projector (spec §4): configuration, schedules, w statistics and their cache,
per-face random streams, the noise-pyramid depth, and each run's inputs and step loop (ProjectorPlan,
ProjectionRun). Engines implement the optimisation itself."""
from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .layout import GeneratorSpec
from .precision import FP32, PRECISIONS
from .timings import MODEL_DIGEST, W_STATISTICS, phase

DEFAULT_STEPS = 500  # the original Toonify projection (Pinkney's projector)
W_AVG_SAMPLES = 10000
W_AVG_SEED = 123
PERCEPTUAL_SIZE = 256
NOISE_PYRAMID_MIN = 8

StepCallback = Callable[["StepInfo"], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class ProjectorConfig:
    """Pinkney's W+ projector (the Toonify default); ``space='w'`` gives the NVlabs W variant."""

    steps: int = DEFAULT_STEPS
    space: str = "wplus"
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    w_avg_samples: int = W_AVG_SAMPLES
    preview_every: int = 0  # 0 = no preview images in the callback
    precision: str = FP32  # of the step's synthesis and VGG (stylegan2.precision); already resolved, never "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError("precision must be one of %s; got %r" % (", ".join(PRECISIONS), self.precision))
        if self.space not in ("wplus", "w"):
            raise ValueError("space must be 'wplus' or 'w'; got %r" % self.space)
        if self.steps < 1:
            raise ValueError("steps must be at least 1; got %r" % self.steps)

    @property
    def structure(self) -> Tuple[object, ...]:
        """The settings a compiled projector is built from. Everything else (steps, schedules, previews) is
        fed per step, so one projector per (model, batch size, structure) serves any number of steps."""
        return (self.space, self.regularize_noise_weight, self.adam_beta1, self.adam_beta2, self.adam_epsilon,
                self.precision)


@dataclass
class StepInfo:
    step: int  # 1-based: steps done so far
    total: int
    losses: List[float]  # perceptual distance per face at this step
    preview: Optional[np.ndarray] = None  # uint8 [B, H, W, 3] every ``preview_every`` steps
    latents: Optional[Callable[[], np.ndarray]] = None  # the current W+ latents [B, num_ws, w_dim], on demand:
    # a caller that renders its own previews (the service's live previews) asks only when it wants them


@dataclass
class ProjectionResult:
    latents: np.ndarray  # [B, num_ws, w_dim] float32
    losses: List[List[float]] = field(default_factory=list)  # per step, per face
    step_seconds: List[float] = field(default_factory=list)
    cancelled: bool = False

    @property
    def steps_done(self) -> int:
        return len(self.losses)


def run_config(built: ProjectorConfig, requested: ProjectorConfig) -> ProjectorConfig:
    """The config of one projection run, checked against the structure its projector was built for."""
    if requested.structure != built.structure:
        raise ValueError("this projector was built for %r; a run asked for %r" % (built.structure, requested.structure))
    return requested


def learning_rate(t: float, config: ProjectorConfig) -> float:
    """lr at progress t = step/steps: cosine ramp-down over the last 25 %, linear ramp-up over the first 5 %."""
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / config.lr_rampup_length)
    return config.initial_learning_rate * ramp


def noise_strength(t: float, w_std: float, config: ProjectorConfig) -> float:
    """σ of the latent perturbation: w_std · 0.05 · max(0, 1 − t/0.75)²."""
    return w_std * config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp_length) ** 2


def pyramid_levels(resolution: int) -> int:
    """Levels of the noise regulariser for a map of this size: halve until the level ≤ 8 has been used."""
    levels, size = 1, resolution
    while size > NOISE_PYRAMID_MIN:
        size //= 2
        levels += 1
    return levels


def perceptual_factor(resolution: int) -> int:
    """Box-downsampling factor before the perceptual net (1024 → 256; smaller images untouched)."""
    return max(1, resolution // PERCEPTUAL_SIZE)


def latent_shape(spec: GeneratorSpec, config: ProjectorConfig) -> Tuple[int, int]:
    """Rows of the optimised latent: num_ws for W+, one tiled row for W."""
    return (spec.num_ws if config.space == "wplus" else 1, spec.w_dim)


def w_statistics(map_fn: Callable[[np.ndarray], np.ndarray], spec: GeneratorSpec,
                 samples: int = W_AVG_SAMPLES) -> Tuple[np.ndarray, float]:
    """(w_avg [w_dim], w_std) over ``samples`` mapped z from RandomState(123); w_std is the RMS distance
    ‖w − w_avg‖ over the 512 dims (the W variant's σ scale)."""
    z = np.random.RandomState(W_AVG_SEED).randn(samples, spec.z_dim).astype(np.float32)
    w = np.concatenate([map_fn(z[i: i + 1000]) for i in range(0, samples, 1000)]).astype(np.float64)
    w_avg = w.mean(axis=0)
    w_std = float(np.sqrt(np.sum((w - w_avg) ** 2) / samples))
    return w_avg.astype(np.float32), w_std


def sigma_scale(w_std: float, spec: GeneratorSpec, config: ProjectorConfig) -> float:
    """W+ measures σ over all num_ws×512 dims (√num_ws × the W figure, spec §4 table)."""
    return w_std * math.sqrt(spec.num_ws) if config.space == "wplus" else w_std


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_w_statistics(map_fn: Callable[[np.ndarray], np.ndarray], spec: GeneratorSpec, model_path: Path,
                        cache_dir: Optional[Path], samples: int = W_AVG_SAMPLES) -> Tuple[np.ndarray, float]:
    """w statistics keyed by the model file's sha256, so service start-up doesn't redo 10 000 samples."""
    if cache_dir is None:
        with phase(W_STATISTICS):
            return w_statistics(map_fn, spec, samples)
    with phase(MODEL_DIGEST):
        key = "wstats-%s-%d-%d.npz" % (file_digest(model_path)[:16], samples, W_AVG_SEED)
    path = Path(cache_dir) / key
    if path.is_file():
        with phase(W_STATISTICS), np.load(str(path)) as stored:
            return stored["w_avg"].astype(np.float32), float(stored["w_std"])
    with phase(W_STATISTICS):
        w_avg, w_std = w_statistics(map_fn, spec, samples)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    # several workers may share the cache and compute the same file at once: each writes its own part file,
    # and the atomic rename lets the last one win with identical contents
    tmp = path.with_name("%s.%d-%d.part.npz" % (path.name, os.getpid(), threading.get_ident()))
    np.savez(str(tmp), w_avg=w_avg, w_std=np.float64(w_std))
    tmp.replace(path)
    return w_avg, w_std


class FaceStreams:
    """One RandomState per face (seed + index within the whole request), so a face's result does not depend
    on which batch it was projected in."""

    def __init__(self, seeds: Sequence[int]) -> None:
        self.streams = [np.random.RandomState(seed) for seed in seeds]

    def initial_noise(self, spec: GeneratorSpec) -> List[np.ndarray]:
        """Per map, [B, H, W] of N(0, 1): each face draws its maps in order from its own stream."""
        per_face = [[rnd.randn(res, res) for res in spec.noise_resolutions] for rnd in self.streams]
        return [np.stack([face[i] for face in per_face]).astype(np.float32) for i in range(len(spec.noise_resolutions))]

    def perturbation(self, shape: Tuple[int, int], sigma: float) -> np.ndarray:
        """[B, rows, w_dim] of N(0, σ²) for this step."""
        return (np.stack([rnd.randn(*shape) for rnd in self.streams]) * sigma).astype(np.float32)


@dataclass(frozen=True, eq=False)
class ProjectorPlan:
    """What an engine builds a projector from, apart from its framework: the generator's layout, the built config
    (its structure), the batch size, the start latent w_avg and the σ scale of the latent perturbation."""

    spec: GeneratorSpec
    config: ProjectorConfig
    batch: int
    w_avg: np.ndarray
    sigma: float

    @classmethod
    def build(cls, spec: GeneratorSpec, config: ProjectorConfig, w_avg: np.ndarray, w_std: float,
              batch: int) -> "ProjectorPlan":
        return cls(spec, config, batch, w_avg, sigma_scale(w_std, spec, config))

    @property
    def latent_shape(self) -> Tuple[int, int]:
        return latent_shape(self.spec, self.config)

    @property
    def perceptual_factor(self) -> int:
        return perceptual_factor(self.spec.resolution)

    def start(self, targets: np.ndarray, seeds: Sequence[int], config: ProjectorConfig) -> "ProjectionRun":
        """One ``project`` call: ``config`` may differ from the built one in everything but its structure;
        one target and one seed per face of the batch."""
        config = run_config(self.config, config)
        target = targets_to_perceptual_input(targets)
        if len(target) != self.batch or len(seeds) != self.batch:
            raise ValueError("this projector was built for %d faces; got %d targets, %d seeds"
                             % (self.batch, len(target), len(seeds)))
        streams = FaceStreams(seeds)
        return ProjectionRun(self, config, target, streams.initial_noise(self.spec), streams)


@dataclass(eq=False)
class ProjectionRun:
    """The framework-free side of one projection: what an engine feeds its graph or tensors at the start and at
    each step. The initial noise is drawn first, then one perturbation per step, from each face's stream."""

    plan: ProjectorPlan
    config: ProjectorConfig
    targets: np.ndarray  # float32 NCHW in [0, 255]
    initial_noise: List[np.ndarray]  # per map, [B, H, W]
    streams: FaceStreams

    def learning_rate(self, index: int) -> float:
        return learning_rate(index / self.config.steps, self.config)

    def perturbation(self, index: int) -> np.ndarray:
        """[B, rows, w_dim] for step ``index``; draws from the faces' streams, so once per step and in order."""
        sigma = noise_strength(index / self.config.steps, self.plan.sigma, self.config)
        return self.streams.perturbation(self.plan.latent_shape, sigma)

    def steps(self, step: Callable[[int], List[float]], preview: Callable[[], np.ndarray],
              latents: Callable[[], np.ndarray], on_step: Optional[StepCallback],
              should_cancel: Optional[CancelCheck]) -> ProjectionResult:
        """The step loop both engines share: timing, losses, callback (with a preview every k steps, and the
        current latents on demand), cancel. ``step(i)`` runs optimisation step i and returns the perceptual
        distance per face."""
        result = ProjectionResult(latents=np.zeros(0, np.float32))
        for index in range(self.config.steps):
            start = time.perf_counter()
            result.losses.append([float(d) for d in step(index)])
            result.step_seconds.append(time.perf_counter() - start)
            if on_step is not None:
                every = self.config.preview_every
                image = preview() if every and (index + 1) % every == 0 else None
                on_step(StepInfo(index + 1, self.config.steps, result.losses[-1], image, latents))
            if should_cancel is not None and should_cancel():
                result.cancelled = True
                break
        return result


def targets_to_perceptual_input(targets: np.ndarray) -> np.ndarray:
    """uint8 [B, H, W, 3] (or float NCHW in [0, 255]) → float32 NCHW in [0, 255]."""
    targets = np.asarray(targets)
    if targets.dtype == np.uint8:
        return targets.transpose(0, 3, 1, 2).astype(np.float32)
    return targets.astype(np.float32)
