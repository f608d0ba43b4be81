"""Where ``python -m app`` writes: each input its own output name, ``--out`` checked before any model loads,
an earlier result replaced only when asked (``--overwrite``) and then whole, never mixed with new files."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Sequence

from PIL import Image

from .jobs.results import PASTE

RESULT_MARKERS = ("result.json", PASTE)  # what every ``toonify`` result folder holds (both methods)


class UsageError(Exception):
    """A bad option or file, found before any work started; the message names it."""


def distinct_names(names: Sequence[str]) -> List[str]:
    """The names in order, a repeat taking the first free of NAME-2, NAME-3, …: photos a/img.jpg and
    b/img.jpg get the result folders img and img-2. Compared case-blind (macOS and Windows disks are)."""
    taken, chosen = set(), []
    for name in names:
        candidate, number = name, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = "%s-%d" % (name, number)
        taken.add(candidate.casefold())
        chosen.append(candidate)
    return chosen


def output_folder(text: str) -> Path:
    """``--out`` as a folder that is there or can be made, and takes files; made only when written to, so a
    refused command leaves nothing behind."""
    path = Path(text)
    nearest = next(p for p in [path] + list(path.parents) if p.exists())
    if not nearest.is_dir():
        raise UsageError("--out %s: %s is a file, not a folder; name a folder (it is made if missing)"
                         % (text, nearest))
    if not os.access(str(nearest), os.W_OK | os.X_OK):
        raise UsageError("--out %s: cannot write in %s (permissions or a read-only disk)" % (text, nearest))
    return path


def output_image(text: str, overwrite: bool) -> Path:
    """``--out`` as an image file to write: a known image type, in a writable folder, not replacing a file
    unless ``--overwrite``."""
    path = Path(text)
    if path.is_dir():
        raise UsageError("--out %s is a folder: name the image to write, e.g. %s" % (text, path / "pasted.png"))
    if path.suffix.lower() not in Image.registered_extensions():
        raise UsageError("--out %s: not an image file name; end it in .png, .jpg or .webp" % text)
    output_folder(str(path.parent))
    refuse_existing([path], overwrite)
    return path


def refuse_existing(targets: Sequence[Path], overwrite: bool) -> None:
    """Before any work: outputs already there (an empty folder does not count) are named and refused unless
    ``--overwrite``."""
    existing = [str(t) for t in targets if t.exists() and not (t.is_dir() and not any(t.iterdir()))]
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (" and %d more" % (len(existing) - 5) if len(existing) > 5 else "")
        raise UsageError("%s already there: pass --overwrite to replace, or choose another --out" % shown)


def refuse_foreign_folders(folders: Sequence[Path]) -> None:
    """``--overwrite`` replaces earlier results only: a non-empty folder without a result's files is kept."""
    foreign = [str(f) for f in folders if f.exists() and (not f.is_dir() or any(f.iterdir()))
               and not any((f / marker).is_file() for marker in RESULT_MARKERS)]
    if foreign:
        raise UsageError("%s: not a toonify result (no %s), so not replaced even with --overwrite; choose another "
                         "--out" % (", ".join(foreign), " or ".join(RESULT_MARKERS)))


@contextmanager
def result_folder(target: Path) -> Iterator[Path]:
    """A staging folder beside ``target`` that takes its name only once the block has written everything: a
    failure leaves no half result, and an earlier result is replaced whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(".%s.%s.partial" % (target.name, uuid.uuid4().hex[:8]))
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(str(staging), ignore_errors=True)
        raise
    if target.exists():
        retired = target.with_name(".%s.%s.replaced" % (target.name, uuid.uuid4().hex[:8]))
        os.rename(str(target), str(retired))
        os.rename(str(staging), str(target))
        shutil.rmtree(str(retired), ignore_errors=True)
    else:
        os.rename(str(staging), str(target))
