"""``python -m app`` — serve, toonify, align, paste, distill."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from . import distill
from .align import align_face, paste_faces
from .errors import ToonifyError
from .faces import FaceDetector
from .imaging import decode_image


def cmd_align(args: argparse.Namespace) -> int:
    detector = FaceDetector()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: Dict[str, dict] = {}
    status = 0
    for photo in args.photos:
        path = Path(photo)
        try:
            rgb = decode_image(path.read_bytes())
            faces = detector.usable_faces(rgb)
        except ToonifyError as exc:
            print("%s: %s" % (path.name, exc.message), file=sys.stderr)
            report[path.name] = {"size": None, "faces": [], "error": {"code": exc.code, "message": exc.message}}
            status = 1
            continue
        entries = []
        for number, face in enumerate(faces, start=1):
            aligned = align_face(rgb, face.landmarks, args.size)
            name = "%s_%02d.png" % (path.stem, number)
            Image.fromarray(aligned.image).save(str(out / name))
            entries.append(dict(face.to_json(), quad=aligned.quad.round(3).tolist(), aligned=name))
        report[path.name] = {"size": [int(rgb.shape[1]), int(rgb.shape[0])], "faces": entries}
        print("%s: %d face(s)" % (path.name, len(entries)))
    (out / "faces.json").write_text(json.dumps(report, indent=1))
    return status


def cmd_paste(args: argparse.Namespace) -> int:
    path = Path(args.photo)
    report = json.loads(Path(args.faces).read_text())
    entry = report.get(path.name) or report.get(str(path))
    if not entry or not entry["faces"]:
        print("error: %s has no faces in %s" % (path.name, args.faces), file=sys.stderr)
        return 2
    results = [np.asarray(Image.open(p).convert("RGB")) for p in args.results.split(",")]
    if len(results) > len(entry["faces"]):
        print("error: %d results for %d faces" % (len(results), len(entry["faces"])), file=sys.stderr)
        return 2
    quads = [np.asarray(face["quad"], dtype=np.float64) for face in entry["faces"][: len(results)]]
    photo = decode_image(path.read_bytes())
    Image.fromarray(paste_faces(photo, results, quads)).save(args.out)
    print("wrote %s" % args.out)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api import create_app
    from .config import Settings

    settings = Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port,
                log_level="info")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .config import Settings
    from .jobs.rq_worker import default_worker_name, run_worker

    settings = Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_worker(settings, args.name or default_worker_name(), burst=args.burst, metrics_port=args.metrics_port)


def cmd_workers(args: argparse.Namespace) -> int:
    import socket

    from .config import Settings
    from .jobs.redis_store import RedisJobStore, connect

    settings = Settings.from_env()
    store = RedisJobStore(connect(settings.redis_url, socket_timeout=5), settings.result_ttl_s,
                          settings.job_timeout_s, settings.job_attempts)
    workers = [w for w in store.live_workers() if not args.this_host or w["host"] == socket.gethostname()]
    for worker in workers:
        print("%s  engine=%s  job=%s" % (worker["name"], worker["engine"], worker["job"] or "-"))
    print("%d live worker(s); %d job(s) queued or running" % (len(workers), store.queue_depth()))
    return 0 if workers else 1


def cmd_toonify(args: argparse.Namespace) -> int:
    from stylegan2.cli import ProgressBar
    from stylegan2.projection import StepInfo

    from .config import Settings
    from .engine import Engine
    from .pipeline import ToonifyOptions, toonify

    settings = Settings.from_env()
    options = ToonifyOptions(face=args.face, steps=args.steps, seed=args.seed, strength=args.strength)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.method == "fast":
        return toonify_fast_cli(args, settings, options, out)
    engine = Engine(args.engine or settings.engine, Path(args.models or settings.models_dir))
    detector = FaceDetector(Path(args.models or settings.models_dir))
    status = 0
    for photo in args.photos:
        path = Path(photo)
        bar = ProgressBar(path.name)

        def on_step(step: int, total: int, losses, bar=bar) -> None:
            bar(StepInfo(step, total, losses))

        try:
            result = toonify(engine, detector, path.read_bytes(), options, on_step=on_step,
                             batch_size=settings.batch_size)
        except ToonifyError as exc:
            print("%s: %s" % (path.name, exc.message), file=sys.stderr)
            status = 1
            continue
        for index, toon in enumerate(result.toons):
            Image.fromarray(toon).save(str(out / ("%s_%02d-toon.png" % (path.stem, index + 1))))
        Image.fromarray(result.pasted).save(str(out / ("%s-paste.png" % path.stem)))
        print("%s: %d face(s) → %s" % (path.name, len(result.toons), out))
    return status


def toonify_fast_cli(args: argparse.Namespace, settings, options, out: Path) -> int:
    """--method fast: the distilled student instead of projection (app.fast)."""
    from .fast import FastMode, toonify_fast

    models = Path(args.models or settings.models_dir)
    student = FastMode(args.engine or settings.engine, models).load().require()
    detector = FaceDetector(models)
    status = 0
    for photo in args.photos:
        path = Path(photo)
        try:
            result = toonify_fast(student, detector, path.read_bytes(), options.model_copy(update={"output": "paste"}))
        except ToonifyError as exc:
            print("%s: %s" % (path.name, exc.message), file=sys.stderr)
            status = 1
            continue
        for index, toon in enumerate(result.toons):
            Image.fromarray(toon).save(str(out / ("%s_%02d-toon.png" % (path.stem, index + 1))))
        Image.fromarray(result.pasted).save(str(out / ("%s-paste.png" % path.stem)))
        print("%s: %d face(s) → %s (fast mode, %.2fs)" % (path.name, len(result.toons), out,
                                                         sum(result.stage_seconds.values())))
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Toonify: photo in, cartoon face out.")
    sub = parser.add_subparsers(dest="command", required=True)
    align = sub.add_parser("align", help="find faces and write FFHQ-aligned crops + faces.json")
    align.add_argument("photos", nargs="+")
    align.add_argument("--out", required=True)
    align.add_argument("--size", type=int, default=1024, help="output side (the model's resolution)")
    align.set_defaults(func=cmd_align)
    paste = sub.add_parser("paste", help="paste square results back into the photo")
    paste.add_argument("photo")
    paste.add_argument("--faces", required=True, help="faces.json written by align")
    paste.add_argument("--results", required=True, help="comma-separated result images, in face order")
    paste.add_argument("--out", required=True)
    paste.set_defaults(func=cmd_paste)
    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn); settings from TOONIFY_* variables")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run a GPU worker for TOONIFY_QUEUE=redis (loads the models once)")
    worker.add_argument("--name", default=None, help="unique worker name (default: host.pid)")
    worker.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve this worker's Prometheus metrics")
    worker.set_defaults(func=cmd_worker)
    workers = sub.add_parser("workers", help="list the live workers (TOONIFY_QUEUE=redis); exit 1 if none")
    workers.add_argument("--this-host", action="store_true", help="only this machine's (a container healthcheck)")
    workers.set_defaults(func=cmd_workers)
    toon = sub.add_parser("toonify", help="the whole pipeline on photos, no server")
    toon.add_argument("photos", nargs="+")
    toon.add_argument("--out", required=True)
    toon.add_argument("--face", default="largest", help="largest, all, or an index")
    toon.add_argument("--steps", type=int, default=500)
    toon.add_argument("--seed", type=int, default=0)
    toon.add_argument("--strength", type=float, default=1.0)
    toon.add_argument("--engine", choices=["tf1", "torch"], default=None)
    toon.add_argument("--models", default=None, help="models directory (default TOONIFY_MODELS_DIR or models/)")
    toon.add_argument("--method", choices=["project", "fast"], default="project",
                      help="project: the faithful projection path; fast: the distilled student (needs "
                           "toonify-student.npz in the models directory)")
    toon.set_defaults(func=cmd_toonify)
    distill.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ToonifyError, OSError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


def run(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(argv))
