"""The W+/W projector in TF 1.15 graph mode (spec §4), batched: per-face latents, noise maps and Adam state."""
from __future__ import annotations

import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from ..perceptual import PerceptualSpec
from ..projection import CancelCheck, ProjectionResult, ProjectorConfig, ProjectorPlan, StepCallback, pyramid_levels
from ..regions import REGION_ADAM, REGION_NOISE_REG, REGION_RENORM, REGION_VGG
from ..sampling import to_uint8
from . import ops
from .lpips import LPIPS
from .networks import Generator, synthesis_graph


def noise_regularization(noise: tf.Tensor) -> tf.Tensor:
    """Per sample: Σ over pyramid levels of mean(v·roll_x v)² + mean(v·roll_y v)² (noise [B, H, W, 1])."""
    total = 0.0
    levels = pyramid_levels(noise.shape.as_list()[1])
    v = noise
    for level in range(levels):
        total += tf.square(tf.reduce_mean(v * tf.roll(v, shift=1, axis=2), axis=[1, 2, 3]))
        total += tf.square(tf.reduce_mean(v * tf.roll(v, shift=1, axis=1), axis=[1, 2, 3]))
        if level + 1 < levels:
            v = tf.nn.avg_pool2d(v, ksize=2, strides=2, padding="VALID")
    return total


class Projector:
    """Built once for a batch size; ``project`` may be called many times (state is re-initialised)."""

    def __init__(self, generator: Generator, perceptual: PerceptualSpec, config: ProjectorConfig,
                 w_avg: np.ndarray, w_std: float, batch: int) -> None:
        self.generator, self.plan = generator, ProjectorPlan.build(generator.spec, config, w_avg, w_std, batch)
        spec = generator.spec
        rows, w_dim = self.plan.latent_shape
        with generator.graph.as_default(), tf.name_scope("projector"):
            self.lpips = LPIPS(perceptual)
            self._latent = tf.Variable(tf.zeros([batch, rows, w_dim]), name="latent")
            self._noise = [tf.Variable(tf.zeros([batch, res, res, 1]), name="noise%d" % i)
                           for i, res in enumerate(spec.noise_resolutions)]
            self._perturb = tf.placeholder(tf.float32, [batch, rows, w_dim], name="perturb")
            self._lr = tf.placeholder(tf.float32, [], name="lr")
            ws = self._latent + self._perturb
            if rows == 1:
                ws = tf.tile(ws, [1, spec.num_ws, 1])
            self._images = synthesis_graph(ws, self._noise, generator.synthesis, spec)
            self._target = tf.placeholder(tf.float32, [batch, 3, spec.resolution, spec.resolution], name="target")
            target_taps = self.lpips.features(self._downsample(self._target))
            self._target_taps = [tf.Variable(tf.zeros(t.shape), trainable=False) for t in target_taps]
            self._store_target = tf.group(*[v.assign(t) for v, t in zip(self._target_taps, target_taps)])
            with tf.name_scope(REGION_VGG):
                self._dist = self.lpips.distance_to(self._downsample((self._images + 1) * 127.5),
                                                    self._target_taps)
            with tf.name_scope(REGION_NOISE_REG):
                reg = tf.add_n([noise_regularization(n) for n in self._noise])
            loss = tf.reduce_sum(self._dist) + config.regularize_noise_weight * tf.reduce_sum(reg)
            optimizer = tf.train.AdamOptimizer(self._lr, config.adam_beta1, config.adam_beta2, config.adam_epsilon,
                                               name=REGION_ADAM)
            train = optimizer.minimize(loss, var_list=[self._latent] + self._noise)
            with tf.control_dependencies([train]), tf.name_scope(REGION_RENORM):
                # one session call per step: the update, then the renormalisation of the updated maps
                self._train = tf.group(*[n.assign(self._unit(n.read_value())) for n in self._noise])
            self._init = tf.variables_initializer([self._latent] + self._noise + optimizer.variables())
            self._noise_feeds = [tf.placeholder(tf.float32, n.shape) for n in self._noise]
            start = tf.tile(tf.constant(w_avg)[None, None], [batch, rows, 1])
            self._set_state = tf.group(self._latent.assign(start),
                                       *[n.assign(f) for n, f in zip(self._noise, self._noise_feeds)])
        generator.session.run(tf.variables_initializer(self._target_taps))

    def _downsample(self, images: tf.Tensor) -> tf.Tensor:
        nhwc = ops.box_downsample(tf.transpose(images, [0, 2, 3, 1]), self.plan.perceptual_factor)
        return tf.transpose(nhwc, [0, 3, 1, 2])

    @staticmethod
    def _unit(noise: tf.Tensor) -> tf.Tensor:
        centred = noise - tf.reduce_mean(noise, axis=[1, 2, 3], keepdims=True)
        return centred * tf.rsqrt(tf.reduce_mean(tf.square(centred), axis=[1, 2, 3], keepdims=True))

    def project(self, targets: np.ndarray, seeds: Sequence[int], config: ProjectorConfig,
                on_step: Optional[StepCallback] = None,
                should_cancel: Optional[CancelCheck] = None) -> ProjectionResult:
        """targets: uint8 [B, H, W, 3] aligned faces. Returns W+ latents [B, num_ws, w_dim]. ``config`` may
        differ from the one the projector was built with in everything but its structure (steps, schedules)."""
        session = self.generator.session
        run = self.plan.start(targets, seeds, config)
        session.run(self._init)
        session.run(self._store_target, {self._target: run.targets})
        session.run(self._set_state, {f: n[..., None] for f, n in zip(self._noise_feeds, run.initial_noise)})

        def step(index: int) -> List[float]:
            feed = {self._lr: run.learning_rate(index), self._perturb: run.perturbation(index)}
            _, dist = session.run([self._train, self._dist], feed)
            return list(dist)

        result = run.steps(step, self.reconstruction, self.latents, on_step, should_cancel)
        result.latents = self.latents()
        return result

    def traced_step(self) -> Tuple[object, float]:
        """One more step (lr 0, no perturbation: the same ops) under a full trace, for bench/profile_step.py:
        (step stats, wall seconds)."""
        options, metadata = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), tf.RunMetadata()
        feed = {self._lr: 0.0, self._perturb: np.zeros(self._perturb.shape.as_list(), np.float32)}
        start = time.perf_counter()
        self.generator.session.run([self._train, self._dist], feed, options=options, run_metadata=metadata)
        return metadata.step_stats, time.perf_counter() - start

    def noise_maps(self) -> List[np.ndarray]:
        """Current per-face noise maps, [B, H, W] each."""
        return [n[..., 0] for n in self.generator.session.run(self._noise)]

    def latents(self) -> np.ndarray:
        latent = self.generator.session.run(self._latent)
        return np.repeat(latent, self.generator.spec.num_ws // latent.shape[1], axis=1).astype(np.float32)

    def reconstruction(self) -> np.ndarray:
        """uint8 [B, H, W, 3] of the current latents with the optimised noise (what project_images.py saves)."""
        zero = np.zeros(self._perturb.shape.as_list(), np.float32)
        return to_uint8(self.generator.session.run(self._images, {self._perturb: zero}))


def build_projector(generator: Generator, perceptual: PerceptualSpec, config: ProjectorConfig,
                    w_avg: np.ndarray, w_std: float, batch: int) -> Projector:
    return Projector(generator, perceptual, config, w_avg, w_std, batch)


def regularization_value(noise: np.ndarray) -> np.ndarray:
    """The noise regulariser of [B, H, W] maps, per face (for tests and tools)."""
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        return session.run(noise_regularization(tf.constant(noise[..., None].astype(np.float32))))


def lpips_distance(perceptual: PerceptualSpec, images0: np.ndarray, images1: np.ndarray) -> List[float]:
    """Standalone LPIPS on two NCHW [0, 255] batches (for tests and tools)."""
    graph = tf.Graph()
    with graph.as_default():
        lpips = LPIPS(perceptual)
        a = tf.placeholder(tf.float32, images0.shape)
        b = tf.placeholder(tf.float32, images1.shape)
        dist = lpips.distance(a, b)
        with tf.Session(graph=graph) as session:
            return [float(d) for d in session.run(dist, {a: images0, b: images1})]
