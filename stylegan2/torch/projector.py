"""The W+/W projector in PyTorch (spec §4), batched: per-face latents, noise maps and Adam state."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from ..perceptual import PerceptualSpec
from ..precision import FP32
from ..projection import CancelCheck, ProjectionResult, ProjectorConfig, ProjectorPlan, StepCallback, pyramid_levels
from ..regions import REGION_ADAM, REGION_NOISE_REG, REGION_RENORM, REGION_VGG
from ..sampling import to_uint8
from . import ops
from .lpips import LPIPS
from .networks import Generator
from .precision import loss_scaler, precision_scope


def noise_regularization(noise: torch.Tensor) -> torch.Tensor:
    """Per sample: Σ over pyramid levels of mean(v·roll_x v)² + mean(v·roll_y v)² (noise [B, 1, H, W])."""
    total = 0.0
    v = noise
    levels = pyramid_levels(noise.shape[-1])
    for level in range(levels):
        total = total + torch.square(torch.mean(v * torch.roll(v, shifts=1, dims=3), dim=(1, 2, 3)))
        total = total + torch.square(torch.mean(v * torch.roll(v, shifts=1, dims=2), dim=(1, 2, 3)))
        if level + 1 < levels:
            v = F.avg_pool2d(v, 2)
    return total


class Projector:
    """Same contract as stylegan2.tf.projector.Projector."""

    def __init__(self, generator: Generator, perceptual: PerceptualSpec, config: ProjectorConfig,
                 w_avg: np.ndarray, w_std: float, batch: int) -> None:
        self.generator, self.plan = generator, ProjectorPlan.build(generator.spec, config, w_avg, w_std, batch)
        self.device = generator.device
        self.w_avg = torch.as_tensor(w_avg, device=self.device)
        self.lpips = LPIPS(perceptual, self.device)
        self._latent: Optional[torch.Tensor] = None
        self._noise: List[torch.Tensor] = []

    def _perceptual_input(self, images: torch.Tensor) -> torch.Tensor:
        return ops.box_downsample(images, self.plan.perceptual_factor)

    def _synthesize(self, perturb: Optional[torch.Tensor]) -> torch.Tensor:
        ws = self._latent if perturb is None else self._latent + perturb
        ws = ws.expand(-1, self.generator.spec.num_ws, -1) if ws.shape[1] == 1 else ws
        return self.generator.run_synthesis(ws, self._noise)

    def project(self, targets: np.ndarray, seeds: Sequence[int], config: ProjectorConfig,
                on_step: Optional[StepCallback] = None,
                should_cancel: Optional[CancelCheck] = None) -> ProjectionResult:
        """targets: uint8 [B, H, W, 3] aligned faces. Returns W+ latents [B, num_ws, w_dim]. ``config`` may
        differ from the one the projector was built with in everything but its structure (steps, schedules)."""
        run = self.plan.start(targets, seeds, config)
        config = run.config
        target = torch.as_tensor(run.targets, device=self.device)
        with torch.no_grad():
            target_taps = self.lpips.features(self._perceptual_input(target))
        self._noise = [torch.as_tensor(n[:, None], device=self.device).requires_grad_(True)
                       for n in run.initial_noise]
        rows, _ = self.plan.latent_shape
        self._latent = self.w_avg[None, None].repeat(self.plan.batch, rows, 1).requires_grad_(True)
        optimizer = torch.optim.Adam([self._latent] + self._noise, lr=config.initial_learning_rate,
                                     betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon)
        scaler = loss_scaler(config.precision, self.device)

        def step(index: int) -> List[float]:
            for group in optimizer.param_groups:
                group["lr"] = run.learning_rate(index)
            with precision_scope(config.precision, self.device):
                images = self._synthesize(torch.as_tensor(run.perturbation(index), device=self.device))
                with record_function(REGION_VGG):
                    dist = self.lpips.distance_to(self._perceptual_input((images + 1) * 127.5), target_taps)
            with record_function(REGION_NOISE_REG):
                reg = sum(noise_regularization(n) for n in self._noise)
            loss = dist.sum() + config.regularize_noise_weight * reg.sum()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            with record_function(REGION_ADAM):
                scaler.step(optimizer)
                scaler.update()
            with torch.no_grad(), record_function(REGION_RENORM):
                for noise in self._noise:
                    noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
                    noise *= torch.rsqrt(torch.square(noise).mean(dim=(1, 2, 3), keepdim=True))
            return dist.detach().cpu().tolist()

        result = run.steps(step, self.reconstruction, self.latents, on_step, should_cancel)
        result.latents = self.latents()
        return result

    def noise_maps(self) -> List[np.ndarray]:
        """Current per-face noise maps, [B, H, W] each."""
        return [n.detach()[:, 0].cpu().numpy() for n in self._noise]

    def latents(self) -> np.ndarray:
        latent = self._latent.detach()
        return latent.expand(-1, self.generator.spec.num_ws, -1).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def reconstruction(self) -> np.ndarray:
        """uint8 [B, H, W, 3] of the current latents with the optimised noise, in fp32 whatever the steps ran at."""
        with precision_scope(FP32, self.device):
            return to_uint8(self._synthesize(None).cpu().numpy())


def build_projector(generator: Generator, perceptual: PerceptualSpec, config: ProjectorConfig,
                    w_avg: np.ndarray, w_std: float, batch: int) -> Projector:
    return Projector(generator, perceptual, config, w_avg, w_std, batch)


def regularization_value(noise: np.ndarray) -> np.ndarray:
    """The noise regulariser of [B, H, W] maps, per face (for tests and tools)."""
    return noise_regularization(torch.as_tensor(noise[:, None].astype(np.float32))).numpy()


def lpips_distance(perceptual: PerceptualSpec, images0: np.ndarray, images1: np.ndarray) -> List[float]:
    """Standalone LPIPS on two NCHW [0, 255] batches (for tests and tools)."""
    lpips = LPIPS(perceptual, torch.device("cpu"))
    with torch.no_grad():
        dist = lpips.distance(torch.as_tensor(images0, dtype=torch.float32),
                              torch.as_tensor(images1, dtype=torch.float32))
    return [float(d) for d in dist]
