"""The one result layout: a toonify run's file names and contents, the same whether the service writes them
into a job's folder (or Redis hash) or ``python -m app toonify`` into its output folder, and the one reader of
saved latents. The names are the ones stored jobs already hold, so renaming any of them would orphan those."""
from __future__ import annotations

import io
import json
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from ..encoding import encode_image
from ..errors import ResultNotFound, ResultNotReady
from ..toonify import Projection, Rendering
from .job import LATENTS, PHOTO, Job
from .store import JobStore

PASTE = "paste.png"
FACES = "faces.json"  # each face's box, landmarks and quad: what pasting at another strength needs


def face_file(kind: str, face: int) -> str:
    """A face's image of one kind (toon, aligned, reconstruction): ``toon_00.png``, ``aligned_01.png``, …"""
    return "%s_%02d.png" % (kind, face)


def rerender_file(face: int, style: Optional[str], strength: float) -> str:
    """A face's toon re-rendered from its latents, kept beside the result set: ``toon_00-strength0.60.png``;
    another style's is prefixed with it, as in the API's ``style=all`` ZIP (``ukiyoe_toon_00-strength0.60.png``)."""
    return "%s%s-strength%.2f.png" % (style + "_" if style else "", face_file("toon", face)[:-4], strength)


def transcode_file(stored: str, fmt: str) -> str:
    """A stored PNG result kept in another format beside it, encoded once on the first request for it:
    ``paste.jpeg``, ``toon_00.webp``."""
    return "%s.%s" % (stored[: -len(".png")], fmt)


def keep_file(store: JobStore, job_id: str, name: str, data: bytes) -> None:
    """A file made from a job's results after it finished (a transcode), kept with them, whole or not at all
    (the store's write_file), and gone with the job: a write that raced with the job's deletion or expiry is
    taken back (Redis's write_file does it in the same script). Best effort: one that cannot be written (a full
    disk, the job's folder gone) is made again next time."""
    try:
        store.write_file(job_id, name, data)
    except OSError:
        return
    if store.get(job_id) is None:
        store.delete_files(job_id)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def result_files(projection: Projection, rendering: Rendering, photo: bytes) -> Iterator[Tuple[str, bytes]]:
    """(name, contents) of everything a user may download or re-render later, each encoded once, the photo
    included (pasting toons at another strength needs it). Latents come last: their presence marks a result
    set complete."""
    for index, (toon, aligned, reconstruction) in enumerate(zip(rendering.toons, projection.aligned,
                                                                rendering.reconstructions)):
        yield face_file("toon", index), encode_image(toon)
        yield face_file("aligned", index), encode_image(aligned)
        yield face_file("reconstruction", index), encode_image(reconstruction)
    yield PASTE, encode_image(rendering.pasted)
    yield PHOTO, photo
    faces = [dict(face.to_json(), quad=quad.tolist()) for face, quad in zip(projection.faces, projection.quads)]
    yield FACES, json.dumps(faces).encode()
    yield LATENTS, npy_bytes(projection.latents)


def write_results(store: JobStore, job_id: str, projection: Projection, rendering: Rendering, photo: bytes) -> None:
    """A job's result set into its store (it expires with the job); the photo is the upload, kept where it is."""
    for name, data in result_files(projection, rendering, photo):
        if name == PHOTO:
            store.keep_upload(job_id)
        else:
            store.write_file(job_id, name, data)


def parse_latents(data: bytes) -> np.ndarray:
    """Saved W+ latents as [faces, num_ws, 512]: a result set's ``latents.npy`` (every face), or one face's
    [num_ws, 512] (the API's ``kind=latents`` download). ValueError names what is wrong."""
    try:
        latents = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError("not a NumPy .npy file (%s)" % exc) from None
    if latents.ndim == 2:
        latents = latents[None]
    if latents.ndim != 3 or latents.shape[0] == 0 or latents.shape[2] != 512:
        raise ValueError("expected W+ latents of shape [faces, num_ws, 512] or [num_ws, 512]; got %s"
                         % (list(latents.shape),))
    return latents


def read_latents(store: JobStore, job: Job, faces: Sequence[int]) -> np.ndarray:
    """The W+ latents [len(faces), num_ws, 512] of some faces of a succeeded job, in that order."""
    data = store.read_file(job.id, LATENTS) if job.status == "succeeded" else None
    if data is None:
        raise ResultNotReady("job %s has no latents (status %s)" % (job.id, job.status))
    latents = parse_latents(data)
    for face in faces:
        if not 0 <= face < len(latents):
            raise ResultNotFound("job %s has %d face(s); face %d does not exist" % (job.id, len(latents), face))
    return latents[list(faces)]


def latents_npy(store: JobStore, job: Job, face: int) -> bytes:
    """One face's W+ latents as a download: float32 [num_ws, 512] (``render`` of the CLI takes it too)."""
    return npy_bytes(read_latents(store, job, [face])[0].astype(np.float32))
