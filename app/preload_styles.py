"""``preload.sh --style NAME URL SHA256``: fetch a style (issue 26) into the models folder's ``styles/`` with
the same resumable, atomic download as the three model files, kept only when its sha256 is the one given (a
style is someone else's file: the checksum is how its publisher vouches for it) and it reads as a generator
of the expected resolution with the safe reader (TF pickle or StyleGAN2-ADA snapshot; nothing in it runs).
The server checks it against FFHQ at its next start (stylegan2.styles)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Sequence

from .preload import Checks, Downloader, ModelFile, PreloadError, check_header, sha256_of

SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_generator(path: Path, name: str, resolution: int) -> None:
    from stylegan2 import pickles
    from stylegan2.errors import ModelError
    from stylegan2.layout import describe

    try:
        spec = describe(pickles.load_generator(path))
    except ModelError as exc:
        raise PreloadError("style %s is not a generator we read: %s" % (name, exc)) from None
    if spec.resolution != resolution:
        raise PreloadError("style %s is a %d² generator; the models are %d²" % (name, spec.resolution, resolution))


def fetch_style(models_dir: Path, name: str, url: str, sha256: str, checks: Checks) -> None:
    """``styles/NAME.pkl`` from ``url``, verified; one already there with this sha256 is kept as it is."""
    from stylegan2.model_files import STYLES_FOLDER
    from stylegan2.styles import STYLE_NAME, STYLE_NAME_RULE

    if not STYLE_NAME.fullmatch(name):
        raise PreloadError("--style %r: a style name is %s" % (name, STYLE_NAME_RULE))
    if not SHA256.fullmatch(sha256.lower()):
        raise PreloadError("--style %s: %r is not a sha256 (64 hexadecimal digits)" % (name, sha256))
    folder = models_dir / STYLES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    dest, part = folder / (name + ".pkl"), folder / (name + ".pkl.part")
    if dest.exists():
        if sha256_of(dest) != sha256.lower():
            raise PreloadError("styles/%s.pkl is there with another sha256; remove it to fetch this one" % name)
        print("ok       styles/%s.pkl" % name)
        return
    if checks.verify_only:
        raise PreloadError("styles/%s.pkl is missing" % name)
    print("fetch    styles/%s.pkl from %s" % (name, url))
    Downloader().fetch(url, part)
    try:
        digest = sha256_of(part)
        if digest != sha256.lower():
            raise PreloadError("style %s has sha256 %s, not the %s given: not kept" % (name, digest, sha256.lower()))
        check_header(part, ModelFile(name + ".pkl", url, "", "generator", 0), 0)
        if checks.structural:
            _check_generator(part, name, checks.resolution)
    except PreloadError:
        part.unlink()
        raise
    part.replace(dest)
    print("verified styles/%s.pkl" % name)


def fetch_styles(models_dir: Path, styles: Sequence[Sequence[str]], checks: Checks) -> List[str]:
    """Each (NAME, URL, SHA256) fetched; returns the problems, one per style that failed."""
    problems = []
    for name, url, sha256 in styles:
        try:
            fetch_style(models_dir, name, url, sha256, checks)
        except PreloadError as exc:
            problems.append(str(exc))
    return problems
