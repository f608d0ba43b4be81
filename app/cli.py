"""``python -m app`` — toonify, render, align, paste, serve, worker, workers, distill.

Arguments, files and settings are checked before any model loads, so a typo costs a second, not a model
load; a batch goes on past a bad photo and ends with a summary and a non-zero exit status."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from stylegan2.cli import StepProgress, command_parser, silence_framework_noise
from stylegan2.errors import ModelError
from stylegan2.model_files import MARKER_FILE, STYLES_FOLDER, ModelPaths
from stylegan2.projection import StepInfo
from stylegan2.styles import ALL_STYLES, DEFAULT_STYLE, find_styles

from . import distill
from .cli_outputs import (
    UsageError,
    distinct_names,
    output_folder,
    output_image,
    refuse_existing,
    refuse_foreign_folders,
    result_folder,
)
from .config import ConfigError, Settings
from .errors import ToonifyError
from .faces.align import align_face
from .faces.decode import decode_image
from .faces.detect import FaceDetector
from .faces.paste import paste_faces
from .jobs.results import PASTE, face_file, parse_latents, rerender_file, result_files
from .memory import keep_freed_memory
from .startup import StartupError, check_engine, check_redis, reserve_port
from .toonify import Progress, Toonify

log = logging.getLogger("app")

EXAMPLES = """examples:
  python -m app toonify photo.jpg --out results/             the largest face, TOONIFY_DEFAULT_STEPS steps
  python -m app toonify a.jpg b.png --face all --steps 200 --out results/
  python -m app render results/photo/latents.npy --strength 0.6    re-render in seconds
  python -m app render results/photo/latents.npy --style all       one image per style
  python -m app paste --faces results/photo/ --results results/photo/toon_00-strength0.60.png --out pasted.png
  python -m app align photo.jpg --out aligned/
  python -m app serve                                         then open the URL it prints
"""


class Batch:
    """Per-file outcomes of a command over many files: failures are reported as they happen and again in a
    closing summary, and make the exit status 1."""

    def __init__(self, noun: str, total: int) -> None:
        self.noun, self.total, self.done = noun, total, 0
        self.failed: Dict[str, str] = {}

    def fail(self, name: str, message: str) -> None:
        print("%s: %s" % (name, message), file=sys.stderr)
        self.failed[name] = message

    def finish(self) -> int:
        print("%d of %d %s(s) done" % (self.done, self.total, self.noun))
        if self.failed:
            print("failed: %s" % "; ".join("%s (%s)" % item for item in self.failed.items()), file=sys.stderr)
        return 1 if self.failed else 0


def readable_files(paths: Sequence[str], batch: Batch) -> List[Path]:
    """The paths that are readable files; the others are recorded as failures, naming what is wrong."""
    usable = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            batch.fail(text, "file not found")
        elif not path.is_file():
            batch.fail(text, "not a file")
        elif not os.access(str(path), os.R_OK):
            batch.fail(text, "not readable (permissions)")
        else:
            usable.append(path)
    return usable


def check_models(models_dir: Path) -> None:
    missing = ModelPaths.in_dir(models_dir).missing()
    if missing:
        raise UsageError("%s has no %s: run ./preload.sh for the real weights, or `make tiny-models` for small "
                         "test models (or point --models / TOONIFY_MODELS_DIR elsewhere)"
                         % (models_dir, " or ".join(missing)))


def checked_options(args: argparse.Namespace, settings: Settings):
    """The request options, validated by the same models as the API's, with messages that name the option."""
    from pydantic import ValidationError

    from .options import ToonifyOptions

    fields = {"face": args.face, "steps": args.steps, "seed": args.seed, "strength": args.strength}
    try:
        options = ToonifyOptions(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "option"
            message = str(error["msg"]).replace("Value error, ", "")
            problems.append("--%s %s: %s" % (name, fields.get(name), message[:1].lower() + message[1:]))
        raise UsageError("; ".join(problems)) from None
    if options.steps > settings.max_steps:
        raise UsageError("--steps %d: at most %d (TOONIFY_MAX_STEPS)" % (options.steps, settings.max_steps))
    return options


def _for_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """The TOONIFY_* settings with --engine and --models applied."""
    return settings.replaced(engine=args.engine, models_dir=Path(args.models))


def load_toonify(args: argparse.Namespace, settings: Settings):
    """The Toonify object for --engine and --models (over the TOONIFY_* settings), set up."""
    print("loading the %s models from %s …" % (args.engine, args.models), file=sys.stderr)
    toonify = Toonify(_for_args(settings, args))
    if toonify.tiny:
        print("warning: %s holds tiny TEST models: the results are noise, not faces" % args.models, file=sys.stderr)
    return toonify.setup()


# -- toonify ---------------------------------------------------------------------------------------------------
def face_numbers(choice: str, count: int) -> List[int]:
    """The photo's face index (0 = largest, as in the API's ``face`` option) of each face processed."""
    if choice == "all":
        return list(range(count))
    return [0 if choice == "largest" else int(choice)]


def write_record(folder: Path, photo: Path, projection, rendering, options, toonify) -> None:
    """result.json beside the result set: each face's index in the photo, quad and files, the options, the
    engine and the seconds per stage, so ``paste`` finds the photo and a user sees how the result was made."""
    faces = []
    for position, number in enumerate(face_numbers(options.face, len(projection.faces))):
        files = {kind: face_file(kind, position) for kind in ("toon", "reconstruction", "aligned")}
        faces.append(dict(projection.faces[position].to_json(), index=number,
                          quad=np.round(projection.quads[position], 3).tolist(), files=files))
    seconds = dict(projection.stage_seconds, **rendering.stage_seconds)
    record = {"photo": str(photo), "size": [int(projection.photo.shape[1]), int(projection.photo.shape[0])],
              "faces": faces, "paste": PASTE, "options": options.model_dump(include={"face", "steps", "seed",
                                                                                           "strength"}),
              "engine": toonify.engine, "models_dir": str(toonify.settings.models_dir),
              "tiny_models": toonify.tiny, "seconds": {k: round(v, 3) for k, v in seconds.items()}}
    (folder / "result.json").write_text(json.dumps(record, indent=1))


def planned_results(args: argparse.Namespace, batch: Batch) -> List[Tuple[Path, Path]]:
    """(photo, result folder) per readable photo, before any model loads: ``--out/<photo name>``, a name
    repeated on the command line numbered in its order (img, img-2, …), an earlier result refused unless
    --overwrite, and then only a result folder replaced."""
    readable = set(readable_files(args.photos, batch))
    names = distinct_names([Path(text).stem for text in args.photos])
    plan = [(Path(text), Path(args.out) / name) for text, name in zip(args.photos, names) if Path(text) in readable]
    refuse_existing([folder for _, folder in plan], args.overwrite)
    refuse_foreign_folders([folder for _, folder in plan])
    return plan


def _written(photo: Path, faces: int, folder: Path, replaced: bool, note: str = "") -> None:
    replacing = " (replaced the earlier result)" if replaced else ""
    print("%s: %d face(s) → %s%s%s" % (photo, faces, folder, note, replacing))


def cmd_toonify_fast(args: argparse.Namespace, options, settings: Settings, batch: Batch) -> int:
    """--method fast: the distilled student instead of projection (app.fast): toons and the pasted photo."""
    from .fast import FastMode

    plan = planned_results(args, batch)
    if not plan:
        return batch.finish()
    fast = FastMode(_for_args(settings, args), FaceDetector(Path(args.models))).load()
    fast.require()
    for photo, folder in plan:
        try:
            result = fast.toonify(photo.read_bytes(), options.model_copy(update={"output": "paste"}))
        except (ToonifyError, OSError) as exc:
            batch.fail(str(photo), getattr(exc, "message", None) or str(exc))
            continue
        replaced = folder.exists()
        with result_folder(folder) as staging:
            for position, toon in enumerate(result.toons):
                Image.fromarray(toon).save(str(staging / face_file("toon", position)))
            Image.fromarray(result.pasted).save(str(staging / PASTE))
        batch.done += 1
        _written(photo, len(result.toons), folder, replaced, " (fast mode, %.2fs)" % sum(result.stage_seconds.values()))
    return batch.finish()


class _StepBar(Progress):
    """Projection steps as a progress bar (stylegan2.cli.StepProgress); stages are not shown."""

    def __init__(self, label: str) -> None:
        self.bar = StepProgress(label)

    def step(self, info: StepInfo) -> None:
        self.bar(info)


def cmd_toonify(args: argparse.Namespace, settings: Settings) -> int:
    options = checked_options(args, settings)
    output_folder(args.out)
    batch = Batch("photo", len(args.photos))
    if args.method == "fast":
        return cmd_toonify_fast(args, options, settings, batch)
    check_models(Path(args.models))
    plan = planned_results(args, batch)
    if not plan:
        return batch.finish()
    toonify = load_toonify(args, settings)
    for photo, folder in plan:
        try:
            data = photo.read_bytes()  # read once: projected, then kept in the result set as given
            projection = toonify.project(data, options.projection_options,
                                         _StepBar("%s (%d steps)" % (photo.name, options.steps)))
            rendering = toonify.render(projection, options.render_options)
        except (ToonifyError, OSError) as exc:
            batch.fail(str(photo), getattr(exc, "message", None) or str(exc))
            continue
        replaced = folder.exists()
        with result_folder(folder) as staging:
            for name, contents in result_files(projection, rendering, data):  # the files an API job holds
                (staging / name).write_bytes(contents)
            write_record(staging, photo, projection, rendering, options, toonify)
        batch.done += 1
        _written(photo, len(projection.faces), folder, replaced)
    return batch.finish()


# -- render ----------------------------------------------------------------------------------------------------
def style_plan(args: argparse.Namespace) -> List[Tuple[str, float]]:
    """(style, strength) for each style --style asks for, from the styles folder's names and settings: known
    before any model loads, so output names can be checked first. Without --strength, each style's default."""
    sources, _refused = find_styles(Path(args.models) / STYLES_FOLDER)
    defaults = dict([(DEFAULT_STYLE, 1.0)] + [(s.name, s.settings.default_strength) for s in sources])
    if args.style != ALL_STYLES and args.style not in defaults:
        raise UsageError("--style %s: %s has the styles %s (and 'all')" % (
            args.style, Path(args.models) / STYLES_FOLDER, ", ".join(defaults)))
    names = list(defaults) if args.style == ALL_STYLES else [args.style]
    return [(name, defaults[name] if args.strength is None else args.strength) for name in names]


def render_targets(loaded: Sequence[Tuple[Path, np.ndarray]], args: argparse.Namespace,
                   plan: Sequence[Tuple[str, float]]) -> List[List[Tuple[int, Tuple[str, float], Path]]]:
    """Per latents file, (face, look, image to write) per face and planned style, in --out or beside it, named
    as the result set names re-renders (toon_00-strength0.60.png, ukiyoe_toon_00-strength0.60.png); a name
    that two files would share numbered in command-line order (toon_00-strength0.60-2.png, …)."""
    wanted = [(face, look, str((Path(args.out) if args.out else path.parent) / rerender_file(
        face, None if look[0] == DEFAULT_STYLE else look[0], look[1])[:-4]))
        for path, latents in loaded for face in range(len(latents)) for look in plan]
    names = distinct_names([name for _, _, name in wanted])
    targets = [(face, look, Path(name + ".png")) for (face, look, _), name in zip(wanted, names)]
    per_file, first = [], 0
    for _, latents in loaded:
        count = len(latents) * len(plan)
        per_file.append(targets[first: first + count])
        first += count
    return per_file


def cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    if args.strength is not None and not 0.0 <= args.strength <= 1.0:
        raise UsageError("--strength %s: must be between 0.0 (the photo's reconstruction) and 1.0 (the full toon)"
                         % args.strength)
    if args.out:
        output_folder(args.out)
    check_models(Path(args.models))
    plan = style_plan(args)
    batch = Batch("latents file", len(args.latents))
    loaded = []
    for path in readable_files(args.latents, batch):
        try:
            loaded.append((path, parse_latents(path.read_bytes()).astype(np.float32)))
        except ValueError as exc:
            batch.fail(str(path), str(exc))
    targets = render_targets(loaded, args, plan)
    refuse_existing([target for per_file in targets for _, _, target in per_file], args.overwrite)
    writable = [(path, latents, per_file) for (path, latents), per_file in zip(loaded, targets)
                if args.out or _writable_beside(path, batch)]
    if not writable:
        return batch.finish()
    toonify = load_toonify(args, settings)
    for refusal in toonify.styles.refused:
        print("warning: style %s refused: %s" % (refusal["name"], refusal["reason"]), file=sys.stderr)
    for path, latents, per_file in writable:
        if latents.shape[1] != toonify.num_ws:
            batch.fail(str(path), "has %d latent rows; these models take %d" % (latents.shape[1], toonify.num_ws))
            continue
        rendered = [_render_style(toonify, latents[face: face + 1], path, target, look)
                    for face, look, target in per_file
                    if args.style != ALL_STYLES or look[0] in toonify.styles.names]  # all: the styles that loaded
        if all(rendered):
            batch.done += 1
        else:
            batch.fail(str(path), "not rendered in style %s: refused when the models loaded" % args.style)
    return batch.finish()


def _render_style(toonify: Toonify, latents: np.ndarray, path: Path, target: Path, look: Tuple[str, float]) -> bool:
    """One latents file in one style; False for a style the models refused (the warning above says why)."""
    style, strength = look
    if style not in toonify.styles.names:
        return False
    replaced = target.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(toonify.synthesize(latents, strength, style)[0]).save(str(target))
    print("%s → %s%s" % (path, target, " (replaced)" if replaced else ""))
    return True


def _writable_beside(path: Path, batch: Batch) -> bool:
    if os.access(str(path.parent), os.W_OK | os.X_OK):
        return True
    batch.fail(str(path), "cannot write beside it in %s (permissions or a read-only disk); use --out" % path.parent)
    return False


# -- align and paste -------------------------------------------------------------------------------------------
def cmd_align(args: argparse.Namespace, settings: Settings) -> int:
    out = output_folder(args.out)
    refuse_existing([out / "faces.json"], args.overwrite)
    batch = Batch("photo", len(args.photos))
    readable = set(readable_files(args.photos, batch))
    stems = distinct_names([Path(text).stem for text in args.photos])
    photos = [(Path(text), stem) for text, stem in zip(args.photos, stems) if Path(text) in readable]
    out.mkdir(parents=True, exist_ok=True)
    report: Dict[str, dict] = {name: {"size": None, "faces": [], "error": {"code": "unreadable", "message": message}}
                               for name, message in batch.failed.items()}
    detector = FaceDetector(Path(args.models)) if photos else None
    for path, stem in photos:
        try:
            rgb = decode_image(path.read_bytes())
            faces = detector.usable_faces(rgb)
        except (ToonifyError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            batch.fail(str(path), message)
            report[stem + path.suffix] = {"photo": str(path), "size": None, "faces": [],
                                          "error": {"code": getattr(exc, "code", "unreadable"), "message": message}}
            continue
        entries = []
        for number, face in enumerate(faces):
            aligned = align_face(rgb, face.landmarks, args.size)
            name = "%s_%02d.png" % (stem, number)
            Image.fromarray(aligned.image).save(str(out / name))
            entries.append(dict(face.to_json(), index=number, quad=aligned.quad.round(3).tolist(), aligned=name))
        report[stem + path.suffix] = {"photo": str(path), "size": [int(rgb.shape[1]), int(rgb.shape[0])],
                                      "faces": entries}
        batch.done += 1
        print("%s: %d face(s)" % (path.name, len(entries)))
    (out / "faces.json").write_text(json.dumps(report, indent=1))
    return batch.finish()


def _read_faces_file(text: str) -> Tuple[Path, dict]:
    path = Path(text)
    if path.is_dir():
        path = path / "result.json"
    if not path.is_file():
        raise UsageError("--faces %s: file not found (give align's faces.json, or a toonify result folder or its "
                         "result.json)" % path)
    try:
        return path, json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError("--faces %s: not JSON (%s)" % (path, exc)) from None


def faces_to_paste(args: argparse.Namespace) -> Tuple[Path, List[dict], List[Path]]:
    """The photo, its faces (each with its quad) and the results pasted when --results is not given: from a
    toonify result (its folder or result.json; each face's toon by default) or from align's faces.json."""
    source, record = _read_faces_file(args.faces)
    if isinstance(record.get("photo"), str) and isinstance(record.get("faces"), list):  # toonify's result.json
        photo = Path(args.photo or record["photo"])
        if not photo.is_file():
            raise UsageError("photo not found: %s (name it: python -m app paste PHOTO --faces %s …)" % (photo, source))
        return photo, record["faces"], [source.parent / face["files"]["toon"] for face in record["faces"]]
    if not args.photo:
        raise UsageError("%s is align's faces.json: name the photo (python -m app paste PHOTO --faces …)" % source)
    photo = Path(args.photo)
    if not photo.is_file():
        raise UsageError("photo not found: %s" % photo)
    entries = [entry for entry in record.values() if isinstance(entry, dict) and "photo" in entry
               and os.path.abspath(entry["photo"]) == os.path.abspath(str(photo))]
    entry = entries[0] if entries else record.get(photo.name) or record.get(str(photo))
    if not entry or not entry.get("faces"):
        raise UsageError("%s has no faces in %s" % (photo, source))
    return photo, entry["faces"], []


def cmd_paste(args: argparse.Namespace, settings: Settings) -> int:
    out = output_image(args.out, args.overwrite)
    photo_path, faces, default_results = faces_to_paste(args)
    result_paths = [Path(text) for text in args.results.split(",")] if args.results else default_results
    if not result_paths:
        raise UsageError("--results: name the images to paste (comma-separated, in face order)")
    for path in result_paths:
        if not path.is_file():
            raise UsageError("file not found: %s" % path)
    if len(result_paths) > len(faces):
        raise UsageError("%d results for %d faces" % (len(result_paths), len(faces)))
    results = [np.asarray(Image.open(str(p)).convert("RGB")) for p in result_paths]
    quads = [np.asarray(face["quad"], dtype=np.float64) for face in faces[: len(results)]]
    photo = decode_image(photo_path.read_bytes())
    replaced = out.exists()
    Image.fromarray(paste_faces(photo, results, quads)).save(str(out))
    print("wrote %s%s" % (out, " (replaced)" if replaced else ""))
    return 0


# -- the service -----------------------------------------------------------------------------------------------
def service_url(host: str, port: int) -> str:
    """The address to open in a browser: 'localhost' when listening on every interface."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    return "http://%s:%d/" % ("[%s]" % shown if ":" in shown else shown, port)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .api import create_app
    from .api.middleware import MAX_HEADER_BYTES
    from .api.slow_clients import header_deadline_protocol

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings.replaced(host=args.host or settings.host, port=args.port or settings.port)
    host, port = settings.host, settings.port
    if settings.queue == "redis":
        check_redis(settings.redis_url)
    else:
        check_engine(settings.engine)
    sockets = reserve_port(host, port)
    app = create_app(settings)  # takes the data folder's lock before it recovers any job (local queue)
    if (settings.models_dir / MARKER_FILE).exists():
        log.warning("!!! %s holds tiny random TEST models: every result is noise, not a cartoon face. "
                    "Run ./preload.sh for the real weights. !!!", settings.models_dir)
    log.info("Toonify (%s engine) on %s — open it in a browser%s", settings.engine, service_url(host, port),
             " (listening on all interfaces)" if host in ("0.0.0.0", "::") else "")

    class DrainingServer(uvicorn.Server):
        """On SIGTERM, waiting requests answer at once (their jobs go on after a restart) instead of keeping
        the server in "waiting for connections to close"; half the shutdown budget goes to open connections,
        half to stopping the worker (its job goes back to the queue)."""

        def handle_exit(self, sig, frame) -> None:
            app.state.service.begin_shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="info",
                            http=header_deadline_protocol(settings.header_timeout_s),
                            timeout_keep_alive=5, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                            timeout_graceful_shutdown=max(1, settings.shutdown_timeout_s // 2))
    DrainingServer(config).run(sockets=sockets)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from .jobs.rq_worker import default_worker_name, run_worker

    check_engine(settings.engine)
    missing = Toonify(settings).missing_models()
    if missing:
        raise StartupError(missing)
    check_redis(settings.redis_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_worker(settings, args.name or default_worker_name(), burst=args.burst, metrics_port=args.metrics_port)


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    import socket

    from .jobs.redis_store import RedisJobStore

    check_redis(settings.redis_url)
    store = RedisJobStore.from_settings(settings, socket_timeout=5)
    workers = [w for w in store.live_workers() if not args.this_host or w["host"] == socket.gethostname()]
    for worker in workers:
        print("%s  engine=%s  job=%s" % (worker["name"], worker["engine"], worker["job"] or "-"))
    print("%d live worker(s); %d job(s) queued or running" % (len(workers), store.queue_depth()))
    return 0 if workers else 1


# -- the parser ------------------------------------------------------------------------------------------------
def _add_model_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("--engine", choices=["tf1", "torch"], default=settings.engine,
                        help="the framework that runs the models (TOONIFY_ENGINE)")
    parser.add_argument("--models", default=str(settings.models_dir),
                        help="folder with the three model files (TOONIFY_MODELS_DIR)")


def _add_overwrite_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--overwrite", action="store_true", help=text)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser, command = command_parser("python -m app", "Toonify: photo in, cartoon face out.", "toonify", EXAMPLES)

    toon = command("toonify", "photos in, cartoon faces out (the whole pipeline, no server)")
    toon.add_argument("photos", nargs="+", metavar="PHOTO", help="JPEG, PNG, WebP or HEIC photos")
    toon.add_argument("--out", default="toonify-results",
                      help="output folder; each photo gets a subfolder named after it (a name repeated on the command "
                           "line: NAME, NAME-2, NAME-3, … in order) holding the files of an API job: per face "
                           "toon_NN.png, reconstruction_NN.png, aligned_NN.png; paste.png, latents.npy, faces.json, "
                           "photo.bin; and result.json")
    toon.add_argument("--face", default="largest", help="largest, all, or a face index (0 = the largest)")
    toon.add_argument("--steps", type=int, default=settings.default_steps,
                      help="projection steps; more is closer to the photo (TOONIFY_DEFAULT_STEPS)")
    toon.add_argument("--seed", type=int, default=0, help="random seed of the projection (face k uses seed + k)")
    toon.add_argument("--strength", type=float, default=1.0,
                      help="1.0 = the original Toonify look, 0.0 = the photo's reconstruction")
    toon.add_argument("--method", choices=["project", "fast"], default="project",
                      help="project: the faithful projection path; fast: the distilled student (needs "
                           "toonify-student.npz in the models folder; writes toons and the pasted photo only)")
    _add_overwrite_option(toon, "replace earlier results in --out (otherwise refused before any model loads)")
    _add_model_options(toon, settings)
    toon.set_defaults(func=cmd_toonify)

    render = command("render", "re-render saved latents at another toon strength or in other styles (seconds, no "
                               "projection)")
    render.add_argument("latents", nargs="+", metavar="LATENTS.npy",
                        help="latents.npy written by toonify (every face), or one face's (the API's kind=latents "
                             "download)")
    render.add_argument("--strength", type=float, default=None,
                        help="1.0 = the style's full look, 0.0 = the photo's reconstruction (default: the style's "
                             "default strength, 1.0 unless its NAME.json says otherwise)")
    render.add_argument("--style", default=DEFAULT_STYLE,
                        help="a style of the models folder's styles/ (NAME.pkl), or 'all': one image per style")
    render.add_argument("--out", default=None,
                        help="output folder (default: beside each latents file); per face toon_NN-strengthS.png "
                             "(other styles: STYLE_toon_NN-strengthS.png), a name two files share numbered in "
                             "command-line order: toon_00-strengthS-2.png, …")
    _add_overwrite_option(render, "replace images already there (otherwise refused before any model loads)")
    _add_model_options(render, settings)
    render.set_defaults(func=cmd_render)

    align = command("align", "find faces and write FFHQ-aligned crops + faces.json (no models needed)")
    align.add_argument("photos", nargs="+", metavar="PHOTO")
    align.add_argument("--out", required=True,
                       help="output folder: STEM_00.png … per photo (a repeated stem: STEM-2_00.png) and faces.json")
    _add_overwrite_option(align, "replace a faces.json already in --out")
    align.add_argument("--size", type=int, default=1024, help="output side (the model's resolution)")
    align.add_argument("--models", default=str(settings.models_dir),
                       help="folder that may hold shape_predictor_68_face_landmarks.dat")
    align.set_defaults(func=cmd_align)

    paste = command("paste", "paste square results back into the photo")
    paste.add_argument("photo", nargs="?", default=None,
                       help="the photo (default with a toonify result: the photo its result.json names)")
    paste.add_argument("--faces", required=True,
                       help="a toonify result folder or its result.json, or faces.json written by align")
    paste.add_argument("--results", default=None,
                       help="comma-separated result images, in face order (default with a toonify result: its toons)")
    paste.add_argument("--out", required=True, help="image to write (.png, .jpg, .webp)")
    _add_overwrite_option(paste, "replace --out if it is there")
    paste.set_defaults(func=cmd_paste)

    serve = command("serve", "run the HTTP service; settings from TOONIFY_* variables (README)")
    serve.add_argument("--host", default=None, help="address to listen on (default: TOONIFY_HOST, else %s)"
                       % settings.host)
    serve.add_argument("--port", type=int, default=None, help="port (default: TOONIFY_PORT, else %d)" % settings.port)
    serve.set_defaults(func=cmd_serve)

    worker = command("worker", "run a GPU worker for TOONIFY_QUEUE=redis (loads the models once)")
    worker.add_argument("--name", default=None, help="unique worker name (default: host.pid)")
    worker.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve this worker's Prometheus metrics")
    worker.set_defaults(func=cmd_worker)

    workers = command("workers", "list the live workers (TOONIFY_QUEUE=redis); exit 1 if none")
    workers.add_argument("--this-host", action="store_true", help="only this machine's (a container healthcheck)")
    workers.set_defaults(func=cmd_workers)
    distill.add_parser(command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    keep_freed_memory()  # the allocator policy of every `python -m app` process (app.memory)
    try:
        settings = Settings()
    except ConfigError as exc:
        print("configuration error: %s" % exc, file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    silence_framework_noise(args.verbose)
    try:
        if getattr(args, "engine", None):
            check_engine(args.engine, "--engine %s (default: TOONIFY_ENGINE)")  # before any file is read
        return int(args.func(args, settings))
    except StartupError as exc:
        print("python -m app %s: cannot start: %s" % (args.command, exc), file=sys.stderr)
        return 2
    except UsageError as exc:
        print("python -m app %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2
    except (ToonifyError, ModelError, OSError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


def run(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(argv))
