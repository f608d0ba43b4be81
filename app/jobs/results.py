"""A job's result files (the same names in either store) and reading them back."""
from __future__ import annotations

import io
import json

import numpy as np

from ..encoding import encode_image
from ..errors import ResultNotFound, ResultNotReady
from ..toonify import Projection, Rendering
from .job import LATENTS, PHOTO, Job
from .store import JobStore


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def write_results(store: JobStore, job_id: str, projection: Projection, rendering: Rendering, photo: bytes) -> None:
    """Everything a user may download or re-render later, the photo included (pasting toons at another
    strength needs it; it expires with the rest). Latents go last: their presence marks a result set
    complete."""
    for index, (toon, aligned, reconstruction) in enumerate(zip(rendering.toons, projection.aligned,
                                                                rendering.reconstructions)):
        store.write_file(job_id, "toon_%02d.png" % index, encode_image(toon))
        store.write_file(job_id, "aligned_%02d.png" % index, encode_image(aligned))
        store.write_file(job_id, "reconstruction_%02d.png" % index, encode_image(reconstruction))
    store.write_file(job_id, "paste.png", encode_image(rendering.pasted))
    store.write_file(job_id, PHOTO, photo)
    faces = [dict(face.to_json(), quad=quad.tolist()) for face, quad in zip(projection.faces, projection.quads)]
    store.write_file(job_id, "faces.json", json.dumps(faces).encode())
    store.write_file(job_id, LATENTS, npy_bytes(projection.latents))


def read_latents(store: JobStore, job: Job, face: int) -> np.ndarray:
    """The W+ latents [1, num_ws, 512] of one face of a succeeded job."""
    data = store.read_file(job.id, LATENTS) if job.status == "succeeded" else None
    if data is None:
        raise ResultNotReady("job %s has no latents (status %s)" % (job.id, job.status))
    latents = np.load(io.BytesIO(data))
    if not 0 <= face < len(latents):
        raise ResultNotFound("job %s has %d face(s); face %d does not exist" % (job.id, len(latents), face))
    return latents[face: face + 1]


def latents_npy(store: JobStore, job: Job, face: int) -> bytes:
    """One face's W+ latents as the CLI saves them (``faceN-latents.npy``): float32 [num_ws, 512]."""
    return npy_bytes(read_latents(store, job, face)[0].astype(np.float32))
