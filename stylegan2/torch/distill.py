"""Training the fast-mode student on (FFHQ image, toon) pairs: L1 + LPIPS-VGG (our perceptual net) + an optional
hinge-loss patch discriminator; mixed precision on CUDA; checkpoints every N steps or M minutes; a killed run
resumes from its last checkpoint with the same data stream. Everything lives in one run folder:

    checkpoint.pt   the whole training state (student, optimisers, scaler, step, random states)
    student.npz     the exported student at the last checkpoint (the serving file: copy it to
                    models/toonify-student.npz)
    log.csv         step, seconds, losses (rows past the checkpoint are dropped on resume)
    samples/step-NNNNNNN.png   held-out faces | student | teacher toon, per checkpoint
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..pair_data import PairData
from ..perceptual import PerceptualSpec
from ..student import DEFAULT_CHANNELS, fit_linear, init_student, save_student, to_unit_range
from .lpips import LPIPS
from .ops import pick_device
from .student import StudentNet

LOG_FIELDS = ["step", "seconds", "l1", "lpips", "adv", "disc", "total", "images_per_s"]
LPIPS_MAX_SIDE = 256  # the perceptual net was built for ~224² (spec §4)
SAMPLE_COUNT = 8
LINEAR_FIT_BATCHES = 8


@dataclass(frozen=True)
class TrainConfig:
    pairs: str
    out: str
    steps: int = 20000
    batch: int = 8
    channels: Tuple[int, ...] = DEFAULT_CHANNELS
    learning_rate: float = 2e-3
    lpips_weight: float = 1.0
    adv_weight: float = 0.0
    holdout: int = 16
    checkpoint_steps: int = 1000
    checkpoint_minutes: float = 10.0
    log_steps: int = 50
    seed: int = 0
    amp: bool = True  # only where CUDA runs it
    flip: bool = False  # mirror pairs at random (symmetric data only: a generator's mean image need not be)


class PatchDiscriminator(torch.nn.Module):
    """A small PatchGAN critic on (face, toon) pairs: one realness score per receptive field."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(6, width, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(width, width * 2, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(width * 2, width * 4, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(width * 4, 1, 3, 1, 1))

    def forward(self, face: torch.Tensor, toon: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([face, toon], dim=1))


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(to_unit_range(np.ascontiguousarray(images)), device=device).permute(0, 3, 1, 2)


def _student_input(faces: torch.Tensor, strengths: np.ndarray, takes_strength: bool) -> torch.Tensor:
    if not takes_strength:
        return faces
    plane = torch.as_tensor(strengths, device=faces.device)[:, None, None, None].expand_as(faces[:, :1])
    return torch.cat([faces, plane], dim=1)


def _perceptual_input(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 255], area-downsampled to at most 256² (as the projector prepares its images)."""
    x = (images.float() + 1) * 127.5
    if x.shape[-1] > LPIPS_MAX_SIDE:
        x = F.interpolate(x, size=(LPIPS_MAX_SIDE, LPIPS_MAX_SIDE), mode="area")
    return x


class Trainer:
    """One training run; ``run()`` trains to ``config.steps``, resuming from the run folder's checkpoint."""

    def __init__(self, config: TrainConfig, perceptual: Optional[PerceptualSpec],
                 log: Callable[[str], None] = print, device: Optional[str] = None) -> None:
        self.config, self.log = config, log
        self.device = pick_device(device)
        self.out = Path(config.out)
        (self.out / "samples").mkdir(parents=True, exist_ok=True)
        self.data = PairData(Path(config.pairs), config.holdout)
        torch.manual_seed(config.seed)
        spec = init_student(self.data.resolution, config.channels, len(self.data.strengths) > 1, config.seed,
                            {"pairs": str(config.pairs)})
        self._fit_linear_part(spec)
        self.takes_strength = spec.takes_strength
        self.net = StudentNet(spec).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
        self.lpips = LPIPS(perceptual, self.device) if perceptual is not None and config.lpips_weight > 0 else None
        self.disc = self.opt_d = None
        if config.adv_weight > 0:
            self.disc = PatchDiscriminator().to(self.device)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=config.learning_rate, betas=(0.5, 0.99))
        self.amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.rnd = np.random.RandomState(config.seed)
        self.step, self.seconds = 0, 0.0
        self.held_out = self.data.held_out()

    def _fit_linear_part(self, spec) -> None:
        """Start from the best linear answer (skip colour map + mean image, stylegan2.student.fit_linear) on a
        sample of training pairs, so the U-Net's steps go to what a linear map cannot do."""
        rnd = np.random.RandomState(self.config.seed + 1)
        faces, toons, _ = zip(*[self.data.batch(rnd, 32, flip=False) for _ in range(LINEAR_FIT_BATCHES)])
        colour, mean = fit_linear(to_unit_range(np.concatenate(faces)), to_unit_range(np.concatenate(toons)))
        spec.weights["skip/weight"][:, :, :3] = colour
        spec.weights["mean"][...] = mean

    # ---- state ----------------------------------------------------------------------------------------------
    def _state(self) -> Dict[str, object]:
        return {"config": asdict(self.config), "step": self.step, "seconds": self.seconds,
                "net": self.net.state_dict(), "opt": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                "disc": self.disc.state_dict() if self.disc is not None else None,
                "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
                "numpy_rng": self.rnd.get_state(), "torch_rng": torch.get_rng_state()}

    def resume(self) -> bool:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return False
        state = torch.load(str(path), map_location=self.device, weights_only=False)
        if state["config"]["channels"] != list(self.config.channels) and \
                tuple(state["config"]["channels"]) != tuple(self.config.channels):
            raise ValueError("%s was trained with channels %s; resume with the same --channels"
                             % (path, state["config"]["channels"]))
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state["scaler"])
        if self.disc is not None and state["disc"] is not None:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.rnd.set_state(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self._truncate_log()
        return True

    def _truncate_log(self) -> None:
        """Drop the rows a killed run logged after its last checkpoint: the log tells what the state saw."""
        path = self.out / "log.csv"
        if not path.exists():
            return
        with open(str(path), newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= self.step]
        self._write_log(rows, "w")

    def _write_log(self, rows, mode: str) -> None:
        path = self.out / "log.csv"
        new = mode == "w" or not path.exists()
        with open(str(path), mode if not new else "w", newline="") as handle:
            writer = csv.DictWriter(handle, LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def checkpoint(self) -> None:
        tmp = self.out / "checkpoint.pt.tmp"
        torch.save(self._state(), str(tmp))
        save_student(self.net.export({"trained_steps": self.step, "train_seconds": round(self.seconds, 1)}),
                     self.out / "student.npz")
        tmp.replace(self.out / "checkpoint.pt")
        self.save_samples()
        summary = {"step": self.step, "seconds": round(self.seconds, 1), "held_out_l1": self.held_out_l1()}
        (self.out / "run.json").write_text(json.dumps(dict(summary, config=asdict(self.config)), indent=1))
        self.log("checkpoint at step %d (held-out L1 %.2f grey levels)" % (self.step, summary["held_out_l1"]))

    # ---- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, faces: np.ndarray, strength: float) -> np.ndarray:
        x = _student_input(_to_tensor(faces, self.device), np.full(len(faces), strength, np.float32),
                           self.takes_strength)
        y = torch.cat([self.net(chunk) for chunk in torch.split(x, 16)])
        return np.clip(y.permute(0, 2, 3, 1).float().cpu().numpy() * 127.5 + 128, 0, 255).astype(np.uint8)

    def held_out_l1(self) -> float:
        """Mean |student − teacher toon| in grey levels over the held-out pairs at the highest strength."""
        top = int(np.argmax(self.data.strengths))
        toons = self.held_out["toons"][:, top]
        student = self.predict(self.held_out["faces"], float(self.data.strengths[top]))
        return float(np.abs(student.astype(np.float32) - toons.astype(np.float32)).mean())

    def save_samples(self) -> None:
        from PIL import Image

        top = int(np.argmax(self.data.strengths))
        faces = self.held_out["faces"][:SAMPLE_COUNT]
        student = self.predict(faces, float(self.data.strengths[top]))
        rows = [np.concatenate([f, s, t], axis=1)
                for f, s, t in zip(faces, student, self.held_out["toons"][:SAMPLE_COUNT, top])]
        Image.fromarray(np.concatenate(rows, axis=0)).save(str(self.out / "samples" / ("step-%07d.png" % self.step)))

    # ---- training -------------------------------------------------------------------------------------------
    def _losses(self, faces: torch.Tensor, toons: torch.Tensor, strengths: np.ndarray) -> Dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            pred = self.net(_student_input(faces, strengths, self.takes_strength))
            losses = {"l1": F.l1_loss(pred.float(), toons)}
            if self.disc is not None:
                losses["adv"] = -self.disc(faces, pred).float().mean()
        if self.lpips is not None:
            losses["lpips"] = self.lpips.distance(_perceptual_input(pred), _perceptual_input(toons)).mean()
        losses["pred"] = pred
        return losses

    def _disc_step(self, faces: torch.Tensor, toons: torch.Tensor, pred: torch.Tensor) -> float:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            real = self.disc(faces, toons).float()
            fake = self.disc(faces, pred.detach()).float()
            loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_d)
        return float(loss)

    def train_step(self) -> Dict[str, float]:
        faces_np, toons_np, strengths = self.data.batch(self.rnd, self.config.batch, self.config.flip)
        faces, toons = _to_tensor(faces_np, self.device), _to_tensor(toons_np, self.device)
        losses = self._losses(faces, toons, strengths)
        total = losses["l1"] + self.config.lpips_weight * losses.get("lpips", 0.0) \
            + self.config.adv_weight * losses.get("adv", 0.0)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt)
        disc = self._disc_step(faces, toons, losses["pred"]) if self.disc is not None else 0.0
        self.scaler.update()
        return {"l1": float(losses["l1"].detach()), "lpips": float(losses.get("lpips", 0.0)),
                "adv": float(losses.get("adv", 0.0)), "disc": disc, "total": float(total.detach())}

    def run(self) -> Dict[str, float]:
        if self.resume():
            self.log("resuming %s at step %d" % (self.out, self.step))
        last_checkpoint, rows, window = time.monotonic(), [], []
        while self.step < self.config.steps:
            started = time.perf_counter()
            window.append(self.train_step())
            self.step += 1
            self.seconds += time.perf_counter() - started
            if self.step % self.config.log_steps == 0 or self.step == self.config.steps:
                mean = {key: float(np.mean([w[key] for w in window])) for key in window[0]}
                rows.append(dict(mean, step=self.step, seconds=round(self.seconds, 2),
                                 images_per_s=round(self.step * self.config.batch / max(self.seconds, 1e-9), 2)))
                self._write_log(rows, "a")
                self.log("step %d/%d  l1 %.4f  lpips %.4f  total %.4f" % (self.step, self.config.steps, mean["l1"],
                                                                          mean["lpips"], mean["total"]))
                rows, window = [], []
            due = time.monotonic() - last_checkpoint >= self.config.checkpoint_minutes * 60
            if self.step % self.config.checkpoint_steps == 0 or due or self.step == self.config.steps:
                self.checkpoint()
                last_checkpoint = time.monotonic()
        return {"step": self.step, "held_out_l1": self.held_out_l1()}
