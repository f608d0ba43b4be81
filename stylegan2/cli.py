"""``python -m stylegan2`` — generate, inspect, blend, make-tiny, project, toonify, pairs."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import pickles
from .blending import blend_generators
from .engines import ENGINES, engine_module
from .errors import ModelError
from .layout import describe
from .perceptual import describe_perceptual
from .projection import ProjectorConfig, StepInfo
from .sampling import broadcast, latents_from_seeds, parse_seeds, to_uint8, truncate
from .toonifier import ModelPaths, Toonifier, default_cache_dir


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(str(path))


def cmd_generate(args: argparse.Namespace) -> int:
    spec = describe(pickles.load_generator(args.pkl))
    noise = None
    if args.seeds is not None:
        z, noise = latents_from_seeds(spec, parse_seeds(args.seeds), args.noise == "from-seed")
    elif args.z is not None:
        z = np.load(args.z).astype(np.float32).reshape(-1, spec.z_dim)
    else:
        z = None
    generator = engine_module(args.engine, "networks").Generator(spec)
    if z is not None:
        ws = truncate(broadcast(generator.map(z), spec.num_ws), spec.dlatent_avg, args.psi, spec.truncation_cutoff)
    else:
        ws = broadcast(np.load(args.w), spec.num_ws)
    images = generator.synthesize(ws, noise)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(str(out / "images.npy"), images.astype(np.float32))
    np.save(str(out / "ws.npy"), ws.astype(np.float32))
    for index, image in enumerate(to_uint8(images)):
        _save_png(image, out / ("%04d.png" % index))
    print("wrote %d images (%dx%d, psi %g, engine %s) to %s" % (len(images), spec.resolution, spec.resolution,
                                                              args.psi, args.engine, out))
    return 0


def _network_summary(role: str, record: pickles.NetworkRecord) -> Dict[str, Any]:
    return {
        "role": role,
        "name": record.name,
        "version": record.version,
        "build_func_name": record.build_func_name,
        "static_kwargs": record.static_kwargs,
        "num_variables": len(record.variables),
        "num_values": int(sum(v.size for v in record.variables.values())),
        "variables": {name: list(value.shape) for name, value in record.variables.items()},
        "components": [_network_summary(key, comp) for key, comp in record.components.items()],
    }


def inspect_file(path: str) -> Dict[str, Any]:
    """Structure of a model file, for people and for preload.sh's verification."""
    loaded = pickles.load(path)
    info: Dict[str, Any] = {"file": str(path)}
    if isinstance(loaded, tuple):
        roles = ["G", "D", "Gs"] if len(loaded) == 3 else ["net%d" % i for i in range(len(loaded))]
        info["kind"] = "generator"
        info["networks"] = [_network_summary(role, net) for role, net in zip(roles, loaded)]
        spec = describe(loaded[-1])
        info["generator"] = {"resolution": spec.resolution, "num_ws": spec.num_ws, "z_dim": spec.z_dim,
                             "w_dim": spec.w_dim, "num_channels": spec.num_channels,
                             "layers": len(spec.layers), "noise_maps": len(spec.noise_resolutions)}
    else:
        info["kind"] = "perceptual"
        info["networks"] = [_network_summary("perceptual", loaded)]
        perceptual = describe_perceptual(loaded)
        info["perceptual"] = {"convs": sum(len(b) for b in perceptual.blocks), "taps": len(perceptual.linear),
                              "tap_channels": perceptual.tap_channels}
    return info


def _print_network(net: Dict[str, Any], indent: str = "") -> None:
    print("%s%s: %s (%s) %d variables, %d values, kwargs %s" % (
        indent, net["role"], net["name"], net["build_func_name"], net["num_variables"], net["num_values"],
        json.dumps(net["static_kwargs"], sort_keys=True)))
    for comp in net["components"]:
        _print_network(comp, indent + "  ")


def cmd_inspect(args: argparse.Namespace) -> int:
    info = inspect_file(args.pkl)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(info["file"])
    for net in info["networks"]:
        _print_network(net)
    if "generator" in info:
        g = info["generator"]
        print("generator: resolution %d, num_ws %d, z %d, w %d"
              % (g["resolution"], g["num_ws"], g["z_dim"], g["w_dim"]))
    else:
        p = info["perceptual"]
        print("perceptual: LPIPS-VGG16, %d convs, %d taps, channels %s" % (p["convs"], p["taps"], p["tap_channels"]))
    return 0


def cmd_blend(args: argparse.Namespace) -> int:
    low, high = pickles.load(args.low), pickles.load(args.high)
    for path, loaded in ((args.low, low), (args.high, high)):
        if not isinstance(loaded, tuple) or len(loaded) != 3:
            raise pickles.ModelFileError("%s is not a (G, D, Gs) generator pickle" % path)
    blended = blend_generators(low, high, args.resolution, args.level, args.width)
    pickles.save(blended, args.out)
    print("wrote %s (layers up to %dx%d from %s, above from %s)" % (args.out, args.resolution, args.resolution,
                                                                    args.low, args.high))
    return 0


def cmd_make_tiny(args: argparse.Namespace) -> int:
    from .tiny import write_tiny_models

    paths = write_tiny_models(Path(args.out), args.seed)
    for role, path in paths.items():
        print("%s: %s" % (role, path))
    return 0


def _load_targets(paths: Sequence[str], resolution: int) -> np.ndarray:
    """Aligned face PNGs as uint8 [B, R, R, 3], Lanczos-resized to the model's resolution if needed."""
    from PIL import Image

    images = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        if image.size != (resolution, resolution):
            image = image.resize((resolution, resolution), Image.LANCZOS)
        images.append(np.asarray(image))
    return np.stack(images)


class ProgressBar:
    """A one-line progress bar on stderr: step/total, mean loss, seconds per step, ETA."""

    def __init__(self, label: str) -> None:
        self.label, self.start = label, time.perf_counter()
        self.redraw = sys.stderr.isatty()

    def __call__(self, info: StepInfo) -> None:
        every = max(1, info.total // 10)
        if not self.redraw and info.step % every and info.step != info.total:
            return
        per_step = (time.perf_counter() - self.start) / info.step
        filled = int(30 * info.step / info.total)
        line = "%s [%s%s] %d/%d loss %.4f %.2fs/step ETA %.0fs" % (
            self.label, "#" * filled, "." * (30 - filled), info.step, info.total,
            float(np.mean(info.losses)), per_step, per_step * (info.total - info.step))
        end = "\n" if info.step == info.total or not self.redraw else ""
        sys.stderr.write(("\r" if self.redraw else "") + line + end)
        sys.stderr.flush()


def _projection_batches(args: argparse.Namespace, toon: Optional[str]):
    """Yield (stems, result, toonifier, projector) per batch of targets; face k gets seed S + k."""
    paths = ModelPaths(Path(args.pkl), Path(toon) if toon else None, Path(args.perceptual))
    toonifier = Toonifier(args.engine, paths, default_cache_dir(paths.ffhq))
    config = ProjectorConfig(steps=args.steps, space=args.space)
    targets = list(args.target)
    for first in range(0, len(targets), args.batch):
        chunk = targets[first: first + args.batch]
        aligned = _load_targets(chunk, toonifier.resolution)
        seeds = [args.seed + first + i for i in range(len(chunk))]
        label = "projecting %d-%d of %d" % (first + 1, first + len(chunk), len(targets))
        result = toonifier.project(aligned, seeds, config, on_step=ProgressBar(label))
        yield [Path(p).stem for p in chunk], result, toonifier, toonifier.projector(len(chunk), config)


def _write_projection(out: Path, stem: str, index: int, result, reconstruction: np.ndarray) -> None:
    np.save(str(out / ("%s.npy" % stem)), result.latents[index])
    _save_png(reconstruction[index], out / ("%s.png" % stem))
    record = {"steps": result.steps_done, "loss": [step[index] for step in result.losses],
              "step_seconds": result.step_seconds}
    (out / ("%s.json" % stem)).write_text(json.dumps(record))


def cmd_project(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stems, result, _, projector in _projection_batches(args, None):
        images = projector.reconstruction()
        for index, stem in enumerate(stems):
            _write_projection(out, stem, index, result, images)
            print("%s: loss %.4f → %.4f, wrote %s.npy" % (stem, result.losses[0][index], result.losses[-1][index],
                                                        out / stem))
    return 0


def cmd_toonify(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.pkl = args.ffhq
    for stems, result, toonifier, _ in _projection_batches(args, args.toon):
        toons = toonifier.synthesize(result.latents, 1.0)
        for index, stem in enumerate(stems):
            np.save(str(out / ("%s.npy" % stem)), result.latents[index])
            _save_png(toons[index], out / ("%s-toon.png" % stem))
            print("%s: wrote %s" % (stem, out / ("%s-toon.png" % stem)))
    return 0


def cmd_pairs(args: argparse.Namespace) -> int:
    from .pairs import PairSettings, render_pairs

    settings = PairSettings(resolution=args.resolution, count=args.count, first_seed=args.seed,
                            truncation_psi=args.psi, mixing_prob=args.mixing, shard_size=args.shard_size,
                            strengths=tuple(args.strength or [1.0]), projections=tuple(args.latents or []))
    started = time.perf_counter()

    def on_shard(done: int, total: int, skipped: bool) -> None:
        elapsed = time.perf_counter() - started
        print("shard %d/%d %s (%.1fs)" % (done, total, "already there, skipped" if skipped else "written", elapsed),
              file=sys.stderr, flush=True)

    manifest = render_pairs(args.engine, Path(args.ffhq), Path(args.toon), Path(args.out), settings, on_shard)
    print("%d pairs at %dx%d in %d shards: %s" % (manifest.total, args.resolution, args.resolution,
                                                 len(manifest.shards), args.out))
    return 0


def _add_projection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--perceptual", required=True, help="vgg16_zhang_perceptual.pkl")
    parser.add_argument("--target", action="append", required=True, help="aligned face PNG (repeatable)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="face k of the request uses seed + k")
    parser.add_argument("--space", choices=["wplus", "w"], default="wplus")
    parser.add_argument("--batch", type=int, default=1, help="faces projected at once")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="tf1")
    parser.add_argument("--out", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stylegan2", description="StyleGAN2 pickles without their code.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="render images from seeds, z or w latents")
    gen.add_argument("--pkl", required=True)
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--seeds", help="e.g. 0-7 or 1,5,9")
    source.add_argument("--z", help=".npy of [N, z_dim]")
    source.add_argument("--w", help=".npy of [N, num_ws, 512] or [N, 512]")
    gen.add_argument("--psi", type=float, default=1.0,
                     help="truncation psi (default 1.0 = none; the original G_main defaults to 0.5)")
    gen.add_argument("--noise", choices=["const", "from-seed"], default="const",
                     help="const: the pickle's stored noise buffers; from-seed: re-drawn after z (run_generator.py)")
    gen.add_argument("--engine", choices=sorted(ENGINES), default="tf1")
    gen.add_argument("--out", required=True)
    gen.set_defaults(func=cmd_generate)

    ins = sub.add_parser("inspect", help="networks, kwargs, variables of a model file")
    ins.add_argument("--pkl", required=True)
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(func=cmd_inspect)

    blend = sub.add_parser("blend", help="layer-swap two generators (blend_models.py)")
    blend.add_argument("--low", required=True, help="model for the low-resolution layers")
    blend.add_argument("--high", required=True, help="model for the high-resolution layers")
    blend.add_argument("--resolution", type=int, required=True)
    blend.add_argument("--level", type=int, default=0, choices=[0, 1])
    blend.add_argument("--width", type=float, default=None, help="logistic blend width (default: hard switch)")
    blend.add_argument("--out", required=True)
    blend.set_defaults(func=cmd_blend)

    tiny = sub.add_parser("make-tiny", help="write small random test models under the official file names")
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_make_tiny)

    project = sub.add_parser("project", help="find W+ latents of aligned faces (Toonify's projector)")
    project.add_argument("--pkl", required=True, help="the FFHQ generator")
    _add_projection_options(project)
    project.set_defaults(func=cmd_project)

    toonify = sub.add_parser("toonify", help="project with FFHQ, then render with the cartoon-blended model")
    toonify.add_argument("--ffhq", required=True)
    toonify.add_argument("--toon", required=True)
    _add_projection_options(toonify)
    toonify.set_defaults(func=cmd_toonify)

    pairs = sub.add_parser("pairs", help="render (FFHQ image, toon) pairs of the same W+ for the fast-mode student")
    pairs.add_argument("--ffhq", required=True)
    pairs.add_argument("--toon", required=True)
    pairs.add_argument("--count", type=int, required=True, help="latents from seeds SEED … SEED+COUNT-1")
    pairs.add_argument("--resolution", type=int, required=True, help="pair image side (divides the models')")
    pairs.add_argument("--out", required=True, help="folder for shards + manifest.json (re-run to resume)")
    pairs.add_argument("--seed", type=int, default=0, help="first seed")
    pairs.add_argument("--psi", type=float, default=0.7, help="truncation psi (1 = none)")
    pairs.add_argument("--mixing", type=float, default=0.0, help="style-mixing probability")
    pairs.add_argument("--strength", type=float, action="append",
                       help="toon strength(s) to render, repeatable (default 1.0 only)")
    pairs.add_argument("--latents", action="append", help="saved projections .npy (W+), added after the seeds")
    pairs.add_argument("--shard-size", type=int, default=64)
    pairs.add_argument("--engine", choices=sorted(ENGINES), default="tf1")
    pairs.set_defaults(func=cmd_pairs)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ModelError, ValueError, OSError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


def run(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(argv))
