"""A finished job's results as a request's render options ask for them (style, strength, output, format),
whatever the job was first run with: the cache is keyed by the projection only, so a cache hit (or another
style) re-renders here from the latents and never projects again. This module makes the bytes; app.api.rendering
wraps them in responses.

``face=all`` gives every face: ``output=paste`` one photo with every face pasted back, the other outputs one
image per face (``toon_00.png``, ``toon_01.png``, …). ``style=all`` gives every style's images, each name
prefixed with its style (``cartoon_toon_00.png``, ``ukiyoe_toon_00.png``, …, ``cartoon_paste.png``). A job's
archive is every result of it in one ZIP, written member by member to a temporary file to be streamed from it.
Work on a full-size photo (a re-paste, a re-encode) holds its cost from the decode budget (app.budget)."""
from __future__ import annotations

import io
import json
import tempfile
import threading
import time
import weakref
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, AsyncIterator, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
from fastapi.concurrency import run_in_threadpool

from .budget import MemoryBudget, run_within
from .encoding import encode_image, extension
from .errors import InvalidOption, ResultNotFound, ResultNotReady, ServerBusy
from .faces.repaste import reencode_cost_bytes, reencoded, repaste_cost_bytes, repasted
from .jobs.job import LATENTS, PHOTO, Job
from .jobs.results import FACES, PASTE, face_file, keep_file, latents_npy, transcode_file
from .options import OUTPUT_KINDS
from .service import Service
from .storage import is_out_of_space, storage_full_from
from .styles import StyleCatalog, stored_style

NamedImages = List[Tuple[str, bytes]]
ARCHIVE_CHUNK_BYTES = 256 * 1024
ARCHIVES_AT_ONCE = 2  # archives spooled or streaming at once: each may hold a ZIP of full-size images in TMPDIR
ARCHIVE_RETRY_S = 5
_ARCHIVE_SLOTS = threading.BoundedSemaphore(ARCHIVES_AT_ONCE)


@dataclass(frozen=True)
class Renderer:
    """What a result answer draws on: the service (stored files, re-renders) and the decode budget."""

    svc: Service
    budget: MemoryBudget


RESULT_KINDS = OUTPUT_KINDS + ("latents",)


def _stored_name(kind: str, face: int) -> str:
    if kind == "latents":
        return LATENTS
    return PASTE if kind == "paste" else face_file(kind, face)


def _check(job: Job, kind: str, face: int) -> str:
    """The stored file a result comes from, once the job's status and its faces allow it (409, 422, 404)."""
    if job.status != "succeeded":
        raise ResultNotReady("job %s is %s; results exist once it has succeeded" % (job.id, job.status))
    if kind not in RESULT_KINDS:
        raise InvalidOption("kind must be one of %s" % ", ".join(RESULT_KINDS))
    if kind != "paste" and not 0 <= face < len(job.faces):
        raise ResultNotFound("job %s has %d face(s); face %d does not exist" % (job.id, len(job.faces), face))
    return _stored_name(kind, face)


def _expired(job: Job) -> ResultNotFound:
    return ResultNotFound("the results of job %s have expired" % job.id)


def check_result(svc: Service, job: Job, kind: str, face: int) -> None:
    """The 409 / 404 a stored result would get, from the job and the file's presence alone: a re-render in
    another style or strength reads no stored image it would throw away. Blocking: run it in a thread."""
    if not svc.store.has_file(job.id, _check(job, kind, face)):
        raise _expired(job)


def stored_file(svc: Service, job: Job, kind: str, face: int) -> bytes:
    """One stored result (PNG bytes as rendered at the job's own look; the latents file). Blocking."""
    data = svc.store.read_file(job.id, _check(job, kind, face))
    if data is None:
        raise _expired(job)
    return data


async def stored_in_format(on: Renderer, job: Job, kind: str, face: int, fmt: str) -> bytes:
    """A stored PNG result in the format asked for: PNGs as stored; another format encoded once, within the
    budget, and kept beside the PNG (app.jobs.results.transcode_file), so that the next request reads it."""
    if fmt == "png":
        return await run_in_threadpool(stored_file, on.svc, job, kind, face)
    kept_name = transcode_file(_check(job, kind, face), fmt)
    kept = await run_in_threadpool(on.svc.store.read_file, job.id, kept_name)
    if kept is not None:
        return kept
    png = await run_in_threadpool(stored_file, on.svc, job, kind, face)
    cost = await run_in_threadpool(reencode_cost_bytes, png, fmt)
    data = await run_within(on.budget, cost, reencoded, png, fmt)
    await run_in_threadpool(keep_file, on.svc.store, job.id, kept_name, data)
    return data


class Look(NamedTuple):
    """What a toon is rendered as: a style at a strength."""

    style: str
    strength: float


def rendered_as(job: Job) -> Look:
    """The style and strength the job's stored toons were rendered in."""
    return Look(stored_style(job.options), job.options.strength)


def look_for(job: Job, catalog: StyleCatalog, style: str, requested: Optional[float]) -> Look:
    """``style`` at ``requested``, else at the job's own strength in the job's style, else at the style's default
    strength."""
    if requested is not None:
        return Look(style, requested)
    own = rendered_as(job)
    return Look(style, own.strength if style == own.style else catalog.default_strength(style))


async def faces_bytes(on: Renderer, job: Job, kind: str, faces: List[int], look: Look, fmt: str) -> List[bytes]:
    """Each face's result image encoded as ``fmt``; toons in another style or strength than the job's are
    re-rendered, all in one go."""
    if kind == "toon" and look != rendered_as(job):
        for face in faces:
            await run_in_threadpool(check_result, on.svc, job, kind, face)
        toons = await on.svc.render(job, faces, look.strength, look.style)  # one re-render for every face
        return [await run_in_threadpool(encode_image, toon, fmt) for toon in toons]
    return [await stored_in_format(on, job, kind, face, fmt) for face in faces]


async def face_bytes(on: Renderer, job: Job, kind: str, face: int, look: Look, fmt: str) -> bytes:
    """One face's result image encoded as ``fmt``."""
    return (await faces_bytes(on, job, kind, [face], look, fmt))[0]


def _photo_and_quads(svc: Service, job: Job) -> Tuple[bytes, List[np.ndarray]]:
    photo_bytes, faces_json = svc.store.read_file(job.id, PHOTO), svc.store.read_file(job.id, FACES)
    if photo_bytes is None or faces_json is None:
        raise ResultNotFound("job %s kept no photo to paste onto (expired, or made before photos were "
                                    "kept); send the photo again" % job.id)
    return photo_bytes, [np.asarray(face["quad"]) for face in json.loads(faces_json)]


async def pasted_bytes(on: Renderer, job: Job, look: Look, fmt: str) -> bytes:
    """The photo with every face of the job pasted back as ``look``, encoded as ``fmt``: the full-size decode,
    paste and encode hold their cost from the decode budget, as an upload's decode does."""
    if look == rendered_as(job):
        return await stored_in_format(on, job, "paste", 0, fmt)
    await run_in_threadpool(check_result, on.svc, job, "paste", 0)
    toons = list(await on.svc.render(job, list(range(len(job.faces))), look.strength, look.style))
    photo, quads = await run_in_threadpool(_photo_and_quads, on.svc, job)
    cost = await run_in_threadpool(repaste_cost_bytes, photo, fmt, on.svc.limits)
    return await run_within(on.budget, cost, repasted, photo, toons, quads, fmt, on.svc.limits)


def zip_bytes(images: NamedImages) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for name, data in images:
            archive.writestr(name, data)
    return buffer.getvalue()


async def named_images(on: Renderer, job: Job, kind: str, faces: List[int], look: Look, fmt: str) -> NamedImages:
    """The images one look gives: the pasted photo, or each face's (``toon_00.png``, …)."""
    ext = extension(fmt)
    if kind == "paste":
        return [("paste.%s" % ext, await pasted_bytes(on, job, look, fmt))]
    images = await faces_bytes(on, job, kind, faces, look, fmt)
    return [("%s_%02d.%s" % (kind, face, ext), data) for face, data in zip(faces, images)]


async def every_style_images(on: Renderer, job: Job, kind: str, faces: List[int], requested: Optional[float],
                             fmt: str) -> NamedImages:
    """``style=all``: each style's images, named ``<style>_<image>``; each style at ``requested`` or, when none
    was asked for, at its own default strength."""
    if kind not in ("toon", "paste"):
        raise InvalidOption("style=all renders toons: ask for output (kind) toon or paste; %s does not depend on "
                            "the style" % kind)
    catalog = await run_in_threadpool(on.svc.style_catalog)
    images: NamedImages = []
    for style in catalog.names:
        look = look_for(job, catalog, style, requested)
        images += [(style + "_" + name, data) for name, data in await named_images(on, job, kind, faces, look, fmt)]
    return images


@contextmanager
def _full_disk_is_storage_full() -> Iterator[None]:
    """A temporary file that does not fit is the 507 a full disk gets elsewhere, not a 500."""
    try:
        yield
    except OSError as exc:
        if is_out_of_space(exc):
            raise storage_full_from(exc) from None
        raise


def _discard_archive(archive: zipfile.ZipFile, file: IO[bytes]) -> None:
    try:
        archive.close()  # a no-op once finished; else it writes a directory nobody reads (and may find no room)
    except (OSError, ValueError):
        pass
    file.close()
    _ARCHIVE_SLOTS.release()


class SpooledZip:
    """A ZIP written one member at a time to an anonymous temporary file (TMPDIR), then read back in chunks:
    an archive of many full-size images holds one of them in memory at a time, and leaves nothing on disk
    once its file is closed. Blocking methods: run them in a thread."""

    def __init__(self, finished_at: float) -> None:
        if not _ARCHIVE_SLOTS.acquire(blocking=False):
            raise ServerBusy("the server is building %d archives already; ask again in %d s, or download the "
                             "results one by one" % (ARCHIVES_AT_ONCE, ARCHIVE_RETRY_S), retry_after_s=ARCHIVE_RETRY_S)
        try:
            self.file = tempfile.TemporaryFile()
            self.archive = zipfile.ZipFile(self.file, "w", zipfile.ZIP_STORED)  # images are compressed already
        except BaseException:
            _ARCHIVE_SLOTS.release()
            raise
        # the file and the slot go once: when closed, or when a response that was never streamed is dropped
        self.close = weakref.finalize(self, _discard_archive, self.archive, self.file)
        self.date_time = time.localtime(finished_at)[:6]  # members dated by the job: the same job, the same bytes

    def add(self, name: str, data: bytes) -> None:
        member = zipfile.ZipInfo(name, self.date_time)
        member.external_attr = 0o644 << 16  # a plain readable file when unpacked
        with _full_disk_is_storage_full():
            self.archive.writestr(member, data)

    def finish(self) -> int:
        """Close the archive; its size in bytes, the file rewound for reading."""
        with _full_disk_is_storage_full():
            self.archive.close()
        size = self.file.tell()
        self.file.seek(0)
        return size

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await run_in_threadpool(self.file.read, ARCHIVE_CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk
        finally:
            self.close()


async def fill_archive(on: Renderer, job: Job, spool: SpooledZip, looks: List[Tuple[str, Look]],
                        fmt: str) -> None:
    async def add(images: NamedImages, prefix: str = "") -> None:
        for name, data in images:
            await run_in_threadpool(spool.add, prefix + name, data)

    faces = list(range(len(job.faces)))
    for prefix, look in looks:  # each look's toons in one re-render
        await add(await named_images(on, job, "toon", faces, look, fmt), prefix)
    for face in faces:
        for kind in ("aligned", "reconstruction"):
            await add(await named_images(on, job, kind, [face], looks[0][1], fmt))
        await add([("latents_%02d.npy" % face, await run_in_threadpool(latents_npy, on.svc.store, job, face))])
    for prefix, look in looks:
        await add(await named_images(on, job, "paste", [], look, fmt), prefix)
