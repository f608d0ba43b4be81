"""``python -m app distill``: train the fast-mode student on a pairs folder (torch engine), or ``--eval`` it
against the faithful projection path on held-out pairs. Importing this module needs neither framework."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from stylegan2 import pickles
from stylegan2.engines import backend
from stylegan2.model_files import PERCEPTUAL_FILE, ModelPaths
from stylegan2.pair_data import PairData
from stylegan2.pairs import resize
from stylegan2.perceptual import describe_perceptual
from stylegan2.projection import ProjectorConfig
from stylegan2.student import load_student
from stylegan2.toonifier import Toonifier, default_cache_dir

from .config import Settings


def _channels(text: str):
    return tuple(int(c) for c in text.split(","))


def add_parser(command) -> None:
    """Registers ``distill`` through the CLI's ``command(name, text)`` (stylegan2.cli.command_parser)."""
    distill = command("distill", "train the fast-mode student on pairs (torch), or --eval it")
    distill.add_argument("--pairs", required=True, help="folder written by 'python -m stylegan2 pairs'")
    distill.add_argument("--resolution", type=int, default=None, help="must match the pairs (checked)")
    distill.add_argument("--out", required=True, help="run folder (training) or report folder (--eval); "
                                                      "training resumes from its checkpoint.pt")
    distill.add_argument("--models", default=None, help="models directory (perceptual net; --eval: generators)")
    distill.add_argument("--holdout", type=int, default=16, help="last N pairs, never trained on")
    distill.add_argument("--steps", type=int, default=20000, help="training steps (--eval: projection steps)")
    distill.add_argument("--batch", type=int, default=8)
    distill.add_argument("--channels", type=_channels, default=None, help="U-Net widths, e.g. 16,32,64,128")
    distill.add_argument("--lr", type=float, default=2e-3)
    distill.add_argument("--lpips-weight", type=float, default=1.0)
    distill.add_argument("--adv-weight", type=float, default=0.0, help="patch-discriminator term (0 = off)")
    distill.add_argument("--checkpoint-steps", type=int, default=1000)
    distill.add_argument("--checkpoint-minutes", type=float, default=10.0)
    distill.add_argument("--log-steps", type=int, default=50)
    distill.add_argument("--seed", type=int, default=0)
    distill.add_argument("--flip", action="store_true", help="mirror pairs at random (aligned real faces)")
    distill.add_argument("--eval", action="store_true", help="compare a student with the projection path")
    distill.add_argument("--student", default=None, help="--eval: the student .npz (default OUT/../student.npz)")
    distill.add_argument("--count", type=int, default=8, help="--eval: held-out pairs to project (slow path)")
    distill.add_argument("--engine", choices=["tf1", "torch"], default=None, help="--eval engine")
    distill.set_defaults(func=cmd_distill)


def cmd_distill(args: argparse.Namespace, settings: Settings) -> int:
    if args.models is None:
        args.models = str(settings.models_dir)
    if args.engine is None:
        args.engine = settings.engine
    return evaluate(args, settings) if args.eval else train(args, settings)


def _models_dir(args: argparse.Namespace) -> Path:
    return Path(args.models)


def train(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from stylegan2.torch.distill import TrainConfig, Trainer
    except ImportError:
        print("error: training needs the torch engine (.venv/torch or the torch image)", file=sys.stderr)
        return 2
    data = PairData(Path(args.pairs), args.holdout)
    if args.resolution is not None and args.resolution != data.resolution:
        raise ValueError("the pairs in %s are %d px; pass --resolution %d or render new pairs"
                         % (args.pairs, data.resolution, data.resolution))
    perceptual_path = _models_dir(args) / PERCEPTUAL_FILE
    perceptual = describe_perceptual(pickles.load(perceptual_path)) if args.lpips_weight > 0 else None
    config = TrainConfig(pairs=str(args.pairs), out=str(args.out), steps=args.steps, batch=args.batch,
                         learning_rate=args.lr, lpips_weight=args.lpips_weight, adv_weight=args.adv_weight,
                         holdout=args.holdout, checkpoint_steps=args.checkpoint_steps,
                         checkpoint_minutes=args.checkpoint_minutes, log_steps=args.log_steps, seed=args.seed,
                         flip=args.flip,
                         **({"channels": args.channels} if args.channels else {}))
    result = Trainer(config, perceptual, log=lambda line: print(line, flush=True), device=settings.device or None).run()
    print("done: step %d, held-out L1 %.2f grey levels; serve it by copying %s to the models directory as %s"
          % (result["step"], result["held_out_l1"], Path(args.out) / "student.npz", "toonify-student.npz"))
    return 0


def _l1(a: np.ndarray, b: np.ndarray) -> List[float]:
    return [float(v) for v in np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=(1, 2, 3))]


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Held-out pairs: the input face, the student, the projection path (project the face with the FFHQ
    generator, render with the blended one) and the teacher toon; L1 and LPIPS to the teacher for each."""
    from PIL import Image

    engine = args.engine
    models = _models_dir(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    student_path = Path(args.student) if args.student else out.parent / "student.npz"
    spec = load_student(student_path)
    held = PairData(Path(args.pairs), args.holdout).held_out()
    count = min(args.count, len(held["faces"]))
    strengths = PairData(Path(args.pairs), args.holdout).strengths
    top = int(np.argmax(strengths))
    faces, teacher = held["faces"][:count], held["toons"][:count, top]
    strength = float(strengths[top])
    students = backend(engine).Student(spec, settings.device or None).toonify(faces, strength)
    paths = ModelPaths.in_dir(models)
    toonifier = Toonifier(engine, paths, default_cache_dir(paths.ffhq, settings.cache_dir), settings.device or None)
    targets = resize(faces, toonifier.resolution) if faces.shape[1] != toonifier.resolution else faces
    projected = toonifier.project(targets, list(range(count)), ProjectorConfig(steps=args.steps))
    projection = resize(toonifier.synthesize(projected.latents, strength), faces.shape[1])
    perceptual = describe_perceptual(pickles.load(paths.perceptual))
    lpips = backend(engine).lpips_distance

    def scores(images: np.ndarray) -> Dict[str, float]:
        nchw = lambda x: x.transpose(0, 3, 1, 2).astype(np.float32)  # noqa: E731
        return {"l1": float(np.mean(_l1(images, teacher))),
                "lpips": float(np.mean(lpips(perceptual, nchw(images), nchw(teacher))))}

    report = {"pairs": str(args.pairs), "student_file": str(student_path), "held_out": count, "engine": engine,
              "projection_steps": args.steps, "strength": strength,
              "student_trained_steps": spec.meta.get("trained_steps"),
              "input_face": scores(faces), "student": scores(students), "projection": scores(projection)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    grid = np.concatenate([np.concatenate(row, axis=1) for row in zip(faces, students, projection, teacher)], axis=0)
    Image.fromarray(grid).save(str(out / "side-by-side.png"))
    print("held-out pairs: %d (columns of side-by-side.png: input face | student | projection path | teacher)" % count)
    print("%-22s %10s %10s" % ("vs the teacher's toon", "L1 (grey)", "LPIPS"))
    for name in ("input_face", "student", "projection"):
        print("%-22s %10.2f %10.4f" % (name.replace("_", " "), report[name]["l1"], report[name]["lpips"]))
    print("wrote %s and %s" % (out / "report.json", out / "side-by-side.png"))
    return 0
