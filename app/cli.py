"""``python -m app`` — toonify, render, align, paste, serve, worker, workers, distill.

Arguments, files and settings are checked before any model loads, so a typo costs a second, not a model
load; a batch goes on past a bad photo and ends with a summary and a non-zero exit status."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from stylegan2.cli import StepProgress, command_parser, silence_framework_noise
from stylegan2.model_files import MARKER_FILE, ModelPaths
from stylegan2.projection import StepInfo

from . import distill
from .config import ConfigError, Settings
from .errors import ToonifyError
from .faces.align import align_face
from .faces.decode import decode_image
from .faces.detect import FaceDetector
from .faces.paste import paste_faces
from .toonify import Progress, Toonify

log = logging.getLogger("app")

EXAMPLES = """examples:
  python -m app toonify photo.jpg --out results/             the largest face, TOONIFY_DEFAULT_STEPS steps
  python -m app toonify a.jpg b.png --face all --steps 200 --out results/
  python -m app render results/photo/face0-latents.npy --strength 0.6    re-render in seconds
  python -m app align photo.jpg --out aligned/
  python -m app serve                                         then open the URL it prints
"""


class UsageError(Exception):
    """A bad option or file, found before any work started; the message names it."""


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
    paths = ModelPaths.in_dir(models_dir)
    missing = [p.name for p in (paths.ffhq, paths.toon, paths.perceptual) if not p.is_file()]
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
    return dataclasses.replace(settings, engine=args.engine, models_dir=Path(args.models))


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


def write_toonify_outputs(folder: Path, photo: Path, projection, rendering, options, toonify) -> None:
    """Per face: toon, reconstruction, aligned crop, latents; then the pasted photo and result.json, so a
    user can re-render at another strength (``render``) without projecting again."""
    folder.mkdir(parents=True, exist_ok=True)
    faces = []
    for position, number in enumerate(face_numbers(options.face, len(projection.faces))):
        stem = "face%d" % number
        files = {"toon": stem + "-toon.png", "reconstruction": stem + "-reconstruction.png",
                 "aligned": stem + "-aligned.png", "latents": stem + "-latents.npy"}
        Image.fromarray(rendering.toons[position]).save(str(folder / files["toon"]))
        Image.fromarray(rendering.reconstructions[position]).save(str(folder / files["reconstruction"]))
        Image.fromarray(projection.aligned[position]).save(str(folder / files["aligned"]))
        np.save(str(folder / files["latents"]), projection.latents[position].astype(np.float32))
        faces.append(dict(projection.faces[position].to_json(), index=number,
                          quad=np.round(projection.quads[position], 3).tolist(), files=files))
    Image.fromarray(rendering.pasted).save(str(folder / "paste.png"))
    seconds = dict(projection.stage_seconds, **rendering.stage_seconds)
    record = {"photo": str(photo), "size": [int(projection.photo.shape[1]), int(projection.photo.shape[0])],
              "faces": faces, "paste": "paste.png", "options": options.model_dump(include={"face", "steps", "seed",
                                                                                           "strength"}),
              "engine": toonify.engine, "models_dir": str(toonify.settings.models_dir),
              "tiny_models": toonify.tiny, "seconds": {k: round(v, 3) for k, v in seconds.items()}}
    (folder / "result.json").write_text(json.dumps(record, indent=1))


def cmd_toonify_fast(args: argparse.Namespace, options, settings: Settings) -> int:
    """--method fast: the distilled student instead of projection (app.fast): toons and the pasted photo."""
    from .fast import FastMode

    batch = Batch("photo", len(args.photos))
    photos = readable_files(args.photos, batch)
    if not photos:
        return batch.finish()
    fast = FastMode(_for_args(settings, args), FaceDetector(Path(args.models))).load()
    fast.require()
    for photo in photos:
        try:
            result = fast.toonify(photo.read_bytes(), options.model_copy(update={"output": "paste"}))
        except (ToonifyError, OSError) as exc:
            batch.fail(photo.name, getattr(exc, "message", None) or str(exc))
            continue
        folder = Path(args.out) / photo.stem
        folder.mkdir(parents=True, exist_ok=True)
        for position, number in enumerate(face_numbers(options.face, len(result.toons))):
            Image.fromarray(result.toons[position]).save(str(folder / ("face%d-toon.png" % number)))
        Image.fromarray(result.pasted).save(str(folder / "paste.png"))
        batch.done += 1
        print("%s: %d face(s) → %s (fast mode, %.2fs)" % (photo.name, len(result.toons), folder,
                                                         sum(result.stage_seconds.values())))
    return batch.finish()


class _StepBar(Progress):
    """Projection steps as a progress bar (stylegan2.cli.StepProgress); stages are not shown."""

    def __init__(self, label: str) -> None:
        self.bar = StepProgress(label)

    def step(self, info: StepInfo) -> None:
        self.bar(info)


def cmd_toonify(args: argparse.Namespace, settings: Settings) -> int:
    options = checked_options(args, settings)
    if args.method == "fast":
        return cmd_toonify_fast(args, options, settings)
    check_models(Path(args.models))
    batch = Batch("photo", len(args.photos))
    photos = readable_files(args.photos, batch)
    if not photos:
        return batch.finish()
    toonify = load_toonify(args, settings)
    out = Path(args.out)
    for photo in photos:
        try:
            projection = toonify.project(photo.read_bytes(), options.projection_options,
                                         _StepBar("%s (%d steps)" % (photo.name, options.steps)))
            rendering = toonify.render(projection, options.render_options)
        except (ToonifyError, OSError) as exc:
            batch.fail(photo.name, getattr(exc, "message", None) or str(exc))
            continue
        folder = out / photo.stem
        write_toonify_outputs(folder, photo, projection, rendering, options, toonify)
        batch.done += 1
        print("%s: %d face(s) → %s" % (photo.name, len(projection.faces), folder))
    return batch.finish()


# -- render ----------------------------------------------------------------------------------------------------
def read_latents(path: Path) -> np.ndarray:
    """A face's saved W+ latents ([num_ws, 512], as ``toonify`` writes them) as [1, num_ws, 512]."""
    try:
        latents = np.load(str(path), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError("not a NumPy .npy file (%s)" % exc) from None
    if latents.ndim == 3 and latents.shape[0] == 1:
        latents = latents[0]
    if latents.ndim != 2 or latents.shape[1] != 512:
        raise ValueError("expected W+ latents of shape [num_ws, 512]; got %s" % (list(latents.shape),))
    return latents[None].astype(np.float32)


def cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    if not 0.0 <= args.strength <= 1.0:
        raise UsageError("--strength %s: must be between 0.0 (the photo's reconstruction) and 1.0 (the full toon)"
                         % args.strength)
    check_models(Path(args.models))
    batch = Batch("latents file", len(args.latents))
    loaded = {}
    for path in readable_files(args.latents, batch):
        try:
            loaded[path] = read_latents(path)
        except ValueError as exc:
            batch.fail(str(path), str(exc))
    if not loaded:
        return batch.finish()
    toonify = load_toonify(args, settings)
    for path, latents in loaded.items():
        if latents.shape[1] != toonify.num_ws:
            batch.fail(str(path), "has %d latent rows; these models take %d" % (latents.shape[1], toonify.num_ws))
            continue
        name = "%s-strength%.2f.png" % (path.stem[: -len("-latents")] if path.stem.endswith("-latents")
                                        else path.stem, args.strength)
        target = Path(args.out) / name if args.out else path.with_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(toonify.synthesize(latents, args.strength)[0]).save(str(target))
        batch.done += 1
        print("%s → %s" % (path, target))
    return batch.finish()


# -- align and paste -------------------------------------------------------------------------------------------
def cmd_align(args: argparse.Namespace, settings: Settings) -> int:
    batch = Batch("photo", len(args.photos))
    photos = readable_files(args.photos, batch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: Dict[str, dict] = {name: {"size": None, "faces": [], "error": {"code": "unreadable", "message": message}}
                               for name, message in batch.failed.items()}
    detector = FaceDetector(Path(args.models)) if photos else None
    for path in photos:
        try:
            rgb = decode_image(path.read_bytes())
            faces = detector.usable_faces(rgb)
        except (ToonifyError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            batch.fail(path.name, message)
            report[path.name] = {"size": None, "faces": [],
                                 "error": {"code": getattr(exc, "code", "unreadable"), "message": message}}
            continue
        entries = []
        for number, face in enumerate(faces):
            aligned = align_face(rgb, face.landmarks, args.size)
            name = "%s_%02d.png" % (path.stem, number)
            Image.fromarray(aligned.image).save(str(out / name))
            entries.append(dict(face.to_json(), index=number, quad=aligned.quad.round(3).tolist(), aligned=name))
        report[path.name] = {"size": [int(rgb.shape[1]), int(rgb.shape[0])], "faces": entries}
        batch.done += 1
        print("%s: %d face(s)" % (path.name, len(entries)))
    (out / "faces.json").write_text(json.dumps(report, indent=1))
    return batch.finish()


def cmd_paste(args: argparse.Namespace, settings: Settings) -> int:
    for text in [args.photo, args.faces] + args.results.split(","):
        if not Path(text).is_file():
            raise UsageError("file not found: %s" % text)
    path = Path(args.photo)
    report = json.loads(Path(args.faces).read_text())
    entry = report.get(path.name) or report.get(str(path))
    if not entry or not entry["faces"]:
        raise UsageError("%s has no faces in %s" % (path.name, args.faces))
    results = [np.asarray(Image.open(p).convert("RGB")) for p in args.results.split(",")]
    if len(results) > len(entry["faces"]):
        raise UsageError("%d results for %d faces" % (len(results), len(entry["faces"])))
    quads = [np.asarray(face["quad"], dtype=np.float64) for face in entry["faces"][: len(results)]]
    photo = decode_image(path.read_bytes())
    Image.fromarray(paste_faces(photo, results, quads)).save(args.out)
    print("wrote %s" % args.out)
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
    host, port = args.host or settings.host, args.port or settings.port
    if (settings.models_dir / MARKER_FILE).exists():
        log.warning("!!! %s holds tiny random TEST models: every result is noise, not a cartoon face. "
                    "Run ./preload.sh for the real weights. !!!", settings.models_dir)
    log.info("Toonify (%s engine) on %s — open it in a browser%s", settings.engine, service_url(host, port),
             " (listening on all interfaces)" if host in ("0.0.0.0", "::") else "")
    app = create_app(settings)

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
    DrainingServer(config).run()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from .jobs.rq_worker import default_worker_name, run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_worker(settings, args.name or default_worker_name(), burst=args.burst, metrics_port=args.metrics_port)


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    import socket

    from .jobs.redis_store import RedisJobStore

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


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser, command = command_parser("python -m app", "Toonify: photo in, cartoon face out.", "toonify", EXAMPLES)

    toon = command("toonify", "photos in, cartoon faces out (the whole pipeline, no server)")
    toon.add_argument("photos", nargs="+", metavar="PHOTO", help="JPEG, PNG, WebP or HEIC photos")
    toon.add_argument("--out", default="toonify-results",
                      help="output folder; each photo gets a subfolder with per-face toon, reconstruction, aligned "
                           "crop and latents, the pasted photo and result.json")
    toon.add_argument("--face", default="largest", help="largest, all, or a face index (0 = the largest)")
    toon.add_argument("--steps", type=int, default=settings.default_steps,
                      help="projection steps; more is closer to the photo (TOONIFY_DEFAULT_STEPS)")
    toon.add_argument("--seed", type=int, default=0, help="random seed of the projection (face k uses seed + k)")
    toon.add_argument("--strength", type=float, default=1.0,
                      help="1.0 = the original Toonify look, 0.0 = the photo's reconstruction")
    toon.add_argument("--method", choices=["project", "fast"], default="project",
                      help="project: the faithful projection path; fast: the distilled student (needs "
                           "toonify-student.npz in the models folder; writes toons and the pasted photo only)")
    _add_model_options(toon, settings)
    toon.set_defaults(func=cmd_toonify)

    render = command("render", "re-render saved latents at another toon strength (seconds, no projection)")
    render.add_argument("latents", nargs="+", metavar="LATENTS.npy", help="face latents written by toonify")
    render.add_argument("--strength", type=float, default=1.0,
                        help="1.0 = the original Toonify look, 0.0 = the photo's reconstruction")
    render.add_argument("--out", default=None, help="output folder (default: beside each latents file)")
    _add_model_options(render, settings)
    render.set_defaults(func=cmd_render)

    align = command("align", "find faces and write FFHQ-aligned crops + faces.json (no models needed)")
    align.add_argument("photos", nargs="+", metavar="PHOTO")
    align.add_argument("--out", required=True, help="output folder")
    align.add_argument("--size", type=int, default=1024, help="output side (the model's resolution)")
    align.add_argument("--models", default=str(settings.models_dir),
                       help="folder that may hold shape_predictor_68_face_landmarks.dat")
    align.set_defaults(func=cmd_align)

    paste = command("paste", "paste square results back into the photo")
    paste.add_argument("photo")
    paste.add_argument("--faces", required=True, help="faces.json written by align")
    paste.add_argument("--results", required=True, help="comma-separated result images, in face order")
    paste.add_argument("--out", required=True, help="image to write")
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
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print("configuration error: %s" % exc, file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    silence_framework_noise(args.verbose)
    try:
        return int(args.func(args, settings))
    except UsageError as exc:
        print("python -m app %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2
    except (ToonifyError, OSError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


def run(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(argv))
