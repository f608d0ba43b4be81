"""``toonify PHOTO``: submit a job, show its progress, write the result. Errors end with the server's message
and a non-zero status, never a traceback: the people running this are not the people who wrote it."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import httpx

from .bar import ProgressDisplay
from .client import Client, Job
from .errors import ToonifyApiError, Unauthorized

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
OUTPUTS = ("toon", "paste", "aligned", "reconstruction")


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="toonify", description="Toonify a photo on a Toonify server.")
    cli.add_argument("photo", nargs="?", help="the photo (JPEG, PNG, WebP, HEIC …); or give --url")
    cli.add_argument("--url", help="a photo by URL, fetched by the server (only if the server takes URLs)")
    cli.add_argument("-o", "--out", help="where to write the result (default: PHOTO-OUTPUT.FORMAT here); with "
                                         "--all-faces and an output other than paste, one file per face: OUT-00 …")
    cli.add_argument("--server", default=os.environ.get("TOONIFY_SERVER", "http://localhost:8000"),
                     help="the server's URL (default: $TOONIFY_SERVER or http://localhost:8000)")
    cli.add_argument("--api-key", default=os.environ.get("TOONIFY_API_KEY"),
                     help="the server's API key (default: $TOONIFY_API_KEY)")
    faces = cli.add_mutually_exclusive_group()
    faces.add_argument("--all-faces", action="store_true", help="every face, not only the largest")
    faces.add_argument("--face", type=int, help="this face (0 = the largest; see the server's /faces)")
    cli.add_argument("--style", help="the toon style (a name the server offers)")
    cli.add_argument("--strength", type=float, help="toon strength, 0–1 (default: the server's)")
    cli.add_argument("--output", choices=OUTPUTS, default="toon", help="what to write (default: toon)")
    cli.add_argument("--format", choices=sorted(EXTENSIONS), default="png", help="image format (default: png)")
    cli.add_argument("--steps", type=int, help="projection steps (default: the server's)")
    cli.add_argument("--seed", type=int, help="projection seed (default: the server's)")
    cli.add_argument("--overwrite", action="store_true", help="replace files that are already there")
    return cli


def job_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The form fields of the job; ``None`` leaves the server's default."""
    face = "all" if args.all_faces else args.face
    return {"face": face, "steps": args.steps, "seed": args.seed, "strength": args.strength, "style": args.style,
            "output": args.output, "format": args.format}


def base_path(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    stem = Path(args.photo).stem if args.photo else (Path(urlsplit(args.url).path).stem or "photo")
    return Path("%s-%s%s" % (stem, args.output, EXTENSIONS[args.format]))


def per_face(path: Path, index: int) -> Path:
    return path.with_name("%s-%02d%s" % (path.stem, index, path.suffix))


def one_file_per_face(args: argparse.Namespace) -> bool:
    return bool(args.all_faces) and args.output != "paste"


def refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError("%s is already there (--overwrite replaces it)" % path)


def write_results(client: Client, job: Job, args: argparse.Namespace) -> List[Path]:
    """The finished job's images: one file, or one per face."""
    render = {"strength": args.strength, "style": args.style, "format": args.format}
    out = base_path(args)
    if not one_file_per_face(args):
        faces = [(out, 0)]
    else:
        faces = [(per_face(out, face["index"]), face["index"]) for face in job["faces"]]
    for path, index in faces:
        refuse_existing(path, args.overwrite)
        path.write_bytes(client.result(job["id"], kind=args.output, face=index, **render))
    return [path for path, _ in faces]


def run(client: Client, args: argparse.Namespace) -> List[Path]:
    """Submit, follow, write; Ctrl-C cancels the job on the server before leaving."""
    refuse_existing(per_face(base_path(args), 0) if one_file_per_face(args) else base_path(args), args.overwrite)
    job = client.submit(args.photo, url=args.url, **job_options(args))
    display = ProgressDisplay(sys.stderr)
    try:
        job = client.wait(job["id"], on_state=display.update)
    except KeyboardInterrupt:
        client.cancel(job["id"])
        raise
    finally:
        display.close()
    return write_results(client, job, args)


def failure(error: BaseException, server: str) -> str:
    """One line for people: the server's message (and its status and code), or why nothing answered."""
    if isinstance(error, Unauthorized):
        return "%s (%d %s); give the key with --api-key or TOONIFY_API_KEY" % (error.message, error.status, error.code)
    if isinstance(error, ToonifyApiError):
        return error.message + (" (%d %s)" % (error.status, error.code) if error.status else "")
    if isinstance(error, httpx.HTTPError):
        return "no answer from %s: %s" % (server, error or type(error).__name__)
    return str(error)


def main(argv: Optional[List[str]] = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if (args.photo is None) == (args.url is None):
        cli.error("give a PHOTO or --url (one of them)")
    try:
        with Client(args.server, api_key=args.api_key) as client:
            written = run(client, args)
    except KeyboardInterrupt:
        print("toonify: cancelled", file=sys.stderr)
        return 130
    except (ToonifyApiError, httpx.HTTPError, OSError, ValueError) as error:
        print("toonify: error: %s" % failure(error, args.server), file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
