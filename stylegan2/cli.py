"""``python -m stylegan2`` — generate, inspect, blend, make-tiny, project, toonify, pairs."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import __version__, pickles
from .blending import blend_generators
from .engines import ENGINES, backend, require_engine
from .errors import EngineUnavailable, ModelError
from .layout import GeneratorSpec, describe
from .model_files import ModelPaths
from .npy_stream import NpyStream
from .perceptual import describe_perceptual
from .precision import CHOICES, FP32
from .projection import DEFAULT_STEPS, ProjectorConfig, StepInfo
from .sampling import broadcast, latents_from_seeds, parse_seeds, seed_count, to_uint8, truncate
from .toonifier import Toonifier, default_cache_dir


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(str(path))


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Which framework runs the networks, and on which device: settings come in as flags (the library reads
    no environment)."""
    parser.add_argument("--engine", choices=sorted(ENGINES), default="tf1", help="the framework that runs it")
    parser.add_argument("--device", default=None,
                        help="torch device, e.g. cuda:1 or cpu (default: cuda when available); tf1 places itself")


MAX_SEEDS = 1000000  # per generate run: 49 GB of images.npy even at the tiny models' 64x64


LatentBatches = Iterator[Tuple[str, np.ndarray, Optional[List[np.ndarray]]]]


def _generate_inputs(args: argparse.Namespace, spec: GeneratorSpec) -> Tuple[int, LatentBatches]:
    """How many images, and their latents a batch at a time as ("z" or "w", latents, noise): seeds are drawn
    per batch and .npy inputs are memory-mapped, so the run's memory does not grow with its length."""
    if args.seeds is not None:
        seeds = parse_seeds(args.seeds)

        def from_seeds() -> LatentBatches:
            for first in range(0, len(seeds), args.batch):
                z, noise = latents_from_seeds(spec, seeds[first: first + args.batch], args.noise == "from-seed")
                yield "z", z, noise

        return len(seeds), from_seeds()
    kind = "z" if args.z is not None else "w"
    latents = np.load(args.z or args.w, mmap_mode="r")
    if kind == "z":
        latents = latents.reshape(-1, spec.z_dim)
    return len(latents), ((kind, np.asarray(latents[first: first + args.batch], np.float32), None)
                          for first in range(0, len(latents), args.batch))


def check_room(out: Path, count: int, spec: GeneratorSpec) -> None:
    """Refuse, before rendering anything, a run whose images.npy, ws.npy and PNGs would not fit on the disk."""
    pixels = spec.num_channels * spec.resolution ** 2
    needed = count * (pixels * 4 + pixels + spec.num_ws * spec.w_dim * 4)  # float32 images, PNG at most raw, ws
    free = shutil.disk_usage(str(out)).free
    if needed > free:
        raise ValueError("%d images at %dx%d need about %.1f GB in %s (images.npy, ws.npy, PNGs); %.1f GB are "
                         "free: generate fewer at once (several --seeds ranges) or choose another --out"
                         % (count, spec.resolution, spec.resolution, needed / 1e9, out, free / 1e9))


def cmd_generate(args: argparse.Namespace) -> int:
    spec = describe(pickles.load_generator(args.pkl))
    count, batches = _generate_inputs(args, spec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_room(out, count, spec)
    generator = backend(args.engine).Generator(spec, args.device)
    shape = (count, spec.num_channels, spec.resolution, spec.resolution)
    with NpyStream(out / "images.npy", shape) as images, \
            NpyStream(out / "ws.npy", (count, spec.num_ws, spec.w_dim)) as ws_file:
        for kind, latents, noise in batches:
            if kind == "z":
                ws = truncate(broadcast(generator.map(latents), spec.num_ws), spec.dlatent_avg, args.psi,
                              spec.truncation_cutoff)
            else:
                ws = broadcast(latents, spec.num_ws)
            rendered = generator.synthesize(ws, noise)
            for index, image in enumerate(to_uint8(rendered), start=images.rows):
                _save_png(image, out / ("%04d.png" % index))
            images.append(rendered)
            ws_file.append(ws)
    print("wrote %d images (%dx%d, psi %g, engine %s) to %s" % (count, spec.resolution, spec.resolution,
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


class StepProgress:
    """A tqdm bar for one projection: step/total, each face's loss, rate and ETA. Silent when stderr is not a
    terminal (logs and pipes get the one-line summaries instead)."""

    def __init__(self, label: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=label, unit="step", file=sys.stderr, disable=None, dynamic_ncols=True)

    def __call__(self, info: StepInfo) -> None:
        if self._bar.disable:
            return
        self._bar.total = info.total
        losses = ", ".join("%.4f" % float(loss) for loss in info.losses)
        self._bar.set_postfix_str("loss " + losses, refresh=False)
        self._bar.update(info.step - self._bar.n)
        if info.step >= info.total:
            self._bar.close()


def _projection_batches(args: argparse.Namespace, toon: Optional[str]):
    """Yield (stems, result, toonifier, projector) per batch of targets; face k gets seed S + k."""
    paths = ModelPaths(Path(args.pkl), Path(toon) if toon else None, Path(args.perceptual))
    toonifier = Toonifier(args.engine, paths, default_cache_dir(paths.ffhq, args.cache_dir), args.device)
    config = ProjectorConfig(steps=args.steps, space=args.space, precision=toonifier.precision(args.precision))
    targets = list(args.target)
    for first in range(0, len(targets), args.batch):
        chunk = targets[first: first + args.batch]
        aligned = _load_targets(chunk, toonifier.resolution)
        seeds = [args.seed + first + i for i in range(len(chunk))]
        label = "projecting %d-%d of %d" % (first + 1, first + len(chunk), len(targets))
        result = toonifier.project(aligned, seeds, config, on_step=StepProgress(label))
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


def silence_framework_noise(verbose: bool) -> None:
    """TensorFlow 1.15 prints a screen of deprecation warnings and C++ start-up lines before any result; keep
    them out unless asked for (``--verbose``). Call before the engine is imported."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="tensorflow|tensorboard|h5py")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def version_text(prog: str) -> str:
    return "%s %s (Python %s)" % (prog, __version__, platform.python_version())


def existing_file(text: str) -> str:
    """argparse type: refuse a missing file before any model loads, naming it."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError("file not found: %s" % text)
    return text


def seeds_arg(text: str) -> str:
    try:
        count = seed_count(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seeds like 0-7 or 1,5,9; got %r" % text) from None
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError("%r is %d seeds; at most %d per run: split it into several runs"
                                         % (text, count, MAX_SEEDS))
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("expected a whole number from 1; got %r" % text)
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default shown beside it (where it has one); examples in the epilog kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, argparse.SUPPRESS) and action.default is not False and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


EXAMPLES = """examples:
  python -m stylegan2 inspect --pkl models/stylegan2-ffhq-config-f.pkl
  python -m stylegan2 generate --pkl models/stylegan2-ffhq-config-f.pkl --seeds 0-3 --psi 0.7 --out out/
  python -m stylegan2 blend --low cartoon.pkl --high ffhq.pkl --resolution 64 --out blended.pkl
  python -m stylegan2 make-tiny --out .cache/tiny-models/
"""


def cmd_pairs(args: argparse.Namespace) -> int:
    from .generator_pair import GeneratorPair
    from .pairs import PairSettings, render_pairs

    settings = PairSettings(resolution=args.resolution, count=args.count, first_seed=args.seed,
                            truncation_psi=args.psi, mixing_prob=args.mixing, shard_size=args.shard_size,
                            strengths=tuple(args.strength or [1.0]), projections=tuple(args.latents or []))
    started = time.perf_counter()

    def on_shard(done: int, total: int, skipped: bool) -> None:
        elapsed = time.perf_counter() - started
        print("shard %d/%d %s (%.1fs)" % (done, total, "already there, skipped" if skipped else "written", elapsed),
              file=sys.stderr, flush=True)

    renderer = GeneratorPair(backend(args.engine), Path(args.ffhq), Path(args.toon), args.device)
    manifest = render_pairs(renderer, Path(args.out), settings, on_shard)
    print("%d pairs at %dx%d in %d shards: %s" % (manifest.total, args.resolution, args.resolution,
                                                 len(manifest.shards), args.out))
    return 0


def _add_projection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--perceptual", required=True, type=existing_file, help="vgg16_zhang_perceptual.pkl")
    parser.add_argument("--target", action="append", required=True, type=existing_file,
                        help="aligned face PNG (repeatable)")
    parser.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, help="optimisation steps")
    parser.add_argument("--seed", type=int, default=0, help="face k of the request uses seed + k")
    parser.add_argument("--space", choices=["wplus", "w"], default="wplus", help="latent space searched")
    parser.add_argument("--batch", type=positive_int, default=1, help="faces projected at once")
    parser.add_argument("--precision", choices=CHOICES, default=FP32,
                        help="of each step's synthesis and VGG (auto: the fastest the device runs safely)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="folder for the cached w statistics (default: .cache beside the model, if writable)")
    _add_engine_options(parser)
    parser.add_argument("--out", required=True, help="output folder")


def command_parser(prog: str, description: str, name: str, examples: str
                   ) -> Tuple[argparse.ArgumentParser, Callable[[str, str], argparse.ArgumentParser]]:
    """The shape both CLIs share (``python -m stylegan2``, ``python -m app``): --version, --verbose, and
    subcommands made by the returned ``command(name, text)``, each showing its defaults and the examples."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=examples,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version_text(name))
    parser.add_argument("--verbose", action="store_true", help="show the frameworks' start-up warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(command_name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(command_name, help=text, description=text, epilog=examples,
                              formatter_class=HelpFormatter)

    return parser, command


def build_parser() -> argparse.ArgumentParser:
    parser, command = command_parser("python -m stylegan2", "StyleGAN2 pickles without their code.", "stylegan2",
                                     EXAMPLES)

    gen = command("generate", "render images from seeds, z or w latents")
    gen.add_argument("--pkl", required=True, type=existing_file, help="generator pickle")
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--seeds", type=seeds_arg, help="e.g. 0-7 or 1,5,9 (at most %d)" % MAX_SEEDS)
    source.add_argument("--z", type=existing_file, help=".npy of [N, z_dim]")
    source.add_argument("--w", type=existing_file, help=".npy of [N, num_ws, 512] or [N, 512]")
    gen.add_argument("--psi", type=float, default=1.0,
                     help="truncation psi (1.0 = none; the original G_main defaults to 0.5)")
    gen.add_argument("--noise", choices=["const", "from-seed"], default="const",
                     help="const: the pickle's stored noise buffers; from-seed: re-drawn after z (run_generator.py)")
    gen.add_argument("--batch", type=positive_int, default=8,
                     help="images rendered at once; images.npy, ws.npy and the PNGs are written batch by batch")
    _add_engine_options(gen)
    gen.add_argument("--out", required=True, help="output folder")
    gen.set_defaults(func=cmd_generate)

    ins = command("inspect", "networks, kwargs, variables of a model file")
    ins.add_argument("--pkl", required=True, type=existing_file, help="model pickle")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.set_defaults(func=cmd_inspect)

    blend = command("blend", "layer-swap two generators (blend_models.py); Toonify's model is --low cartoon, "
                             "--high FFHQ at 64")
    blend.add_argument("--low", required=True, type=existing_file,
                       help="model for the layers up to --resolution (the cartoon model: face shape)")
    blend.add_argument("--high", required=True, type=existing_file,
                       help="model for the layers above --resolution (FFHQ: fine detail and texture)")
    blend.add_argument("--resolution", type=positive_int, required=True,
                       help="last resolution taken from --low; the layers above it come from --high")
    blend.add_argument("--level", type=int, default=0, choices=[0, 1],
                       help="1: the next block's first conv from --low too")
    blend.add_argument("--width", type=float, default=None, help="logistic blend width (none: hard switch)")
    blend.add_argument("--out", required=True, help="blended pickle to write")
    blend.set_defaults(func=cmd_blend)

    tiny = command("make-tiny", "write small random test models under the official file names")
    tiny.add_argument("--out", required=True, help="models folder")
    tiny.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    tiny.set_defaults(func=cmd_make_tiny)

    project = command("project", "find W+ latents of aligned faces (Toonify's projector)")
    project.add_argument("--pkl", required=True, type=existing_file, help="the FFHQ generator")
    _add_projection_options(project)
    project.set_defaults(func=cmd_project)

    toonify = command("toonify", "project with FFHQ, then render with the cartoon-blended model")
    toonify.add_argument("--ffhq", required=True, type=existing_file, help="the FFHQ generator")
    toonify.add_argument("--toon", required=True, type=existing_file, help="the cartoon-blended generator")
    _add_projection_options(toonify)
    toonify.set_defaults(func=cmd_toonify)

    pairs = command("pairs", "render (FFHQ image, toon) pairs of the same W+ for the fast-mode student")
    pairs.add_argument("--ffhq", required=True, type=existing_file, help="the FFHQ generator")
    pairs.add_argument("--toon", required=True, type=existing_file, help="the cartoon-blended generator")
    pairs.add_argument("--count", type=positive_int, required=True, help="latents from seeds SEED … SEED+COUNT-1")
    pairs.add_argument("--resolution", type=positive_int, required=True, help="pair image side (divides the models')")
    pairs.add_argument("--out", required=True, help="folder for shards + manifest.json (re-run to resume)")
    pairs.add_argument("--seed", type=int, default=0, help="first seed")
    pairs.add_argument("--psi", type=float, default=0.7, help="truncation psi (1 = none)")
    pairs.add_argument("--mixing", type=float, default=0.0, help="style-mixing probability")
    pairs.add_argument("--strength", type=float, action="append",
                       help="toon strength(s) to render, repeatable (default 1.0 only)")
    pairs.add_argument("--latents", action="append", help="saved projections .npy (W+), added after the seeds")
    pairs.add_argument("--shard-size", type=int, default=64)
    _add_engine_options(pairs)
    pairs.set_defaults(func=cmd_pairs)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    silence_framework_noise(args.verbose)
    try:
        if getattr(args, "engine", None):
            require_engine(args.engine)  # before any model file is read
        return int(args.func(args))
    except EngineUnavailable as exc:
        print("error: --engine %s: %s" % (args.engine, exc), file=sys.stderr)
        return 2
    except (ModelError, ValueError, OSError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


def run(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(argv))
