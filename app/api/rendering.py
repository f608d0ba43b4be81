"""A finished job's results as a request's render options ask for them (style, strength, output, format),
whatever the job was first run with: the cache is keyed by the projection only, so a cache hit (or another
style) re-renders here from the latents and never projects again.

``face=all`` answers every face: ``output=paste`` as one photo with every face pasted back, the other outputs
as a ZIP with one image per face (``toon_00.png``, ``toon_01.png``, …). ``style=all`` answers a ZIP with every
style's images, each name prefixed with its style (``cartoon_toon_00.png``, ``ukiyoe_toon_00.png``, …,
``cartoon_paste.png``). ``GET /jobs/{id}/archive`` answers every result of the job in one ZIP, written member by
member to a temporary file and streamed from it. Work on a full-size photo (a re-paste, a re-encode) holds its
cost from the decode budget (app.budget). Every answer names its file (app.api.filenames)."""
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
from typing import IO, AsyncIterator, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from stylegan2.styles import ALL_STYLES

from ..budget import MemoryBudget, run_within
from ..encoding import encode_image, media_type
from ..errors import InvalidOption, ResultNotFound, ResultNotReady, ServerBusy
from ..faces.repaste import reencode_cost_bytes, reencoded, repaste_cost_bytes, repasted
from ..jobs.job import LATENTS, PHOTO, Job
from ..jobs.results import FACES, PASTE, face_file, latents_npy
from ..options import OUTPUT_KINDS, ToonifyOptions
from ..service import Service
from ..storage import is_out_of_space, storage_full_from
from ..styles import StyleCatalog, stored_style
from .filenames import disposition, download_name, extension, look_parts

NamedImages = List[Tuple[str, bytes]]
NPY_TYPE = "application/octet-stream"  # NumPy's .npy has no registered media type
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


async def _in_format(budget: MemoryBudget, png: bytes, fmt: str) -> bytes:
    """A stored PNG in the format asked for: PNGs are served as stored, others re-encoded within the budget."""
    if fmt == "png":
        return png
    cost = await run_in_threadpool(reencode_cost_bytes, png, fmt)
    return await run_within(budget, cost, reencoded, png, fmt)


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


async def face_bytes(on: Renderer, job: Job, kind: str, face: int, look: Look, fmt: str) -> bytes:
    """A face's result image encoded as ``fmt``; a toon in another style or strength than the job's is
    re-rendered."""
    if kind == "toon" and look != rendered_as(job):
        await run_in_threadpool(check_result, on.svc, job, kind, face)
        return await run_in_threadpool(encode_image, await on.svc.render(job, face, look.strength, look.style), fmt)
    return await _in_format(on.budget, await run_in_threadpool(stored_file, on.svc, job, kind, face), fmt)


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
        return await _in_format(on.budget, await run_in_threadpool(stored_file, on.svc, job, "paste", 0), fmt)
    await run_in_threadpool(check_result, on.svc, job, "paste", 0)
    toons = [await on.svc.render(job, face, look.strength, look.style) for face in range(len(job.faces))]
    photo, quads = await run_in_threadpool(_photo_and_quads, on.svc, job)
    cost = await run_in_threadpool(repaste_cost_bytes, photo, fmt, on.svc.limits)
    return await run_within(on.budget, cost, repasted, photo, toons, quads, fmt, on.svc.limits)


def _zip(images: NamedImages) -> bytes:
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
    return [("%s_%02d.%s" % (kind, face, ext), await face_bytes(on, job, kind, face, look, fmt)) for face in faces]


async def every_style(on: Renderer, job: Job, kind: str, faces: List[int], requested: Optional[float],
                      fmt: str) -> Response:
    """``style=all``: a ZIP of each style's images, named ``<style>_<image>``; each style at ``requested`` or,
    when none was asked for, at its own default strength."""
    if kind not in ("toon", "paste"):
        raise InvalidOption("style=all renders toons: ask for output (kind) toon or paste; %s does not depend on "
                            "the style" % kind)
    catalog = await run_in_threadpool(on.svc.style_catalog)
    images: NamedImages = []
    for style in catalog.names:
        look = look_for(job, catalog, style, requested)
        images += [(style + "_" + name, data) for name, data in await named_images(on, job, kind, faces, look, fmt)]
    where = ["face%d" % faces[0]] if len(faces) == 1 else ["faces"]
    parts = (["paste"] if kind == "paste" else where + [kind]) + look_parts(kind, ALL_STYLES, requested)
    return zip_response(await run_in_threadpool(_zip, images), job, download_name(job.id[:8], parts, "zip"))


def _headers(job: Job, name: str, inline: bool) -> Dict[str, str]:
    return dict(disposition(name, inline), **{"X-Toonify-Job": job.id, "X-Toonify-Faces": str(len(job.faces)),
                                              "Link": "</jobs/%s>; rel=\"job\"" % job.id})


def zip_response(archive: bytes, job: Job, name: str) -> Response:
    return Response(archive, media_type="application/zip", headers=_headers(job, name, inline=False))


def image_name(job: Job, kind: str, face: int, look: Look, fmt: str) -> str:
    """``toonify-<job>-face0-toon-cartoon-0.50.png``, ``…-paste-cartoon-0.50.jpg``, ``…-face1-aligned.png``."""
    where = [] if kind == "paste" else ["face%d" % face]
    return download_name(job.id[:8], where + [kind] + look_parts(kind, look.style, look.strength), extension(fmt))


def image_response(data: bytes, fmt: str, job: Job, name: str) -> Response:
    return Response(data, media_type=media_type(fmt), headers=_headers(job, name, inline=True))


async def result_image(on: Renderer, job: Job, kind: str, face: int, look: Look, fmt: str) -> Response:
    """One result image (a face's, or the pasted photo) as ``look`` in ``fmt``, named for download."""
    if kind == "paste":
        data = await pasted_bytes(on, job, look, fmt)
    else:
        data = await face_bytes(on, job, kind, face, look, fmt)
    return image_response(data, fmt, job, image_name(job, kind, face, look, fmt))


def _latents_name(job: Job, face: int) -> str:
    return download_name(job.id[:8], ["face%d" % face, "latents"], "npy")


async def latents_response(on: Renderer, job: Job, face: int) -> Response:
    """A face's W+ latents as the CLI saves them (``numpy.load`` → float32 [num_ws, 512])."""
    await run_in_threadpool(check_result, on.svc, job, "latents", face)
    data = await run_in_threadpool(latents_npy, on.svc.store, job, face)
    return Response(data, media_type=NPY_TYPE, headers=_headers(job, _latents_name(job, face), inline=False))


async def result_response(on: Renderer, job: Job, options: ToonifyOptions) -> Response:
    """What a waiting ``POST /toonify`` answers once its job has succeeded."""
    faces = list(range(len(job.faces))) if options.face == "all" else [0]
    requested = options.strength if "strength" in options.model_fields_set else None
    if options.every_style:
        return await every_style(on, job, options.output, faces, requested, options.format)
    catalog = await run_in_threadpool(on.svc.style_catalog)
    look = look_for(job, catalog, options.style, requested)
    if options.output == "paste" or options.face != "all":
        return await result_image(on, job, options.output, 0, look, options.format)
    images = await named_images(on, job, options.output, faces, look, options.format)
    parts = ["faces", options.output] + look_parts(options.output, look.style, look.strength)
    return zip_response(await run_in_threadpool(_zip, images), job, download_name(job.id[:8], parts, "zip"))


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


class _SpooledZip:
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


async def _fill_archive(on: Renderer, job: Job, spool: _SpooledZip, looks: List[Tuple[str, Look]],
                        fmt: str) -> None:
    async def add(images: NamedImages, prefix: str = "") -> None:
        for name, data in images:
            await run_in_threadpool(spool.add, prefix + name, data)

    for face in range(len(job.faces)):
        for prefix, look in looks:
            await add(await named_images(on, job, "toon", [face], look, fmt), prefix)
        for kind in ("aligned", "reconstruction"):
            await add(await named_images(on, job, kind, [face], looks[0][1], fmt))
        await add([("latents_%02d.npy" % face, await run_in_threadpool(latents_npy, on.svc.store, job, face))])
    for prefix, look in looks:
        await add(await named_images(on, job, "paste", [], look, fmt), prefix)


async def archive_response(on: Renderer, job: Job, catalog: StyleCatalog, style: str, requested: Optional[float],
                           fmt: str) -> Response:
    """Every result of the job in one ZIP: per face the toon (``toon_00.png``), aligned crop, reconstruction and
    latents (``latents_00.npy``), then the pasted photo, as ``style`` at ``requested`` (else the job's own
    look); ``style=all``: the toons and pastes of every style, prefixed with its name (``ukiyoe_toon_00.png``).
    Re-renders and re-encodes hold the decode budget as they do for /result."""
    await run_in_threadpool(check_result, on.svc, job, "latents", 0)  # 409 / 404 before any work
    if style == ALL_STYLES:
        looks = [(name + "_", look_for(job, catalog, name, requested)) for name in catalog.names]
    else:
        looks = [("", look_for(job, catalog, style, requested))]
    spool = await run_in_threadpool(_SpooledZip, job.finished_at or job.updated_at)
    try:
        await _fill_archive(on, job, spool, looks, fmt)
        size = await run_in_threadpool(spool.finish)
    except BaseException:
        spool.close()
        raise
    label = look_parts("toon", style, requested if style == ALL_STYLES else looks[0][1].strength)
    headers = _headers(job, download_name(job.id[:8], ["results"] + label, "zip"), inline=False)
    headers["Content-Length"] = str(size)
    return StreamingResponse(spool.chunks(), media_type="application/zip", headers=headers)
