"""What is done to a whole 49-MP photo after its upload, each case in its own process, peak RSS above idle beside
its budget: the worker's job path (decode → landmarks → align → paste → PNG; no GAN: the aligned crop stands in
for the toon) against WORKER_BYTES_PER_PIXEL, and the API's re-paste and re-encodes against what they hold
from the decode budget (app.faces.repaste).

    python -m bench.decode_memory --paths
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image

from bench.common import report
from bench.decode_memory import MB, peak_above_idle

REPO = Path(__file__).resolve().parents[1]
PHOTO_SIZE = (6250, 7812)  # 48.8 MP, under the 50-MP limit: obama.jpg upscaled, one face filling the photo
FIXTURE = "obama.jpg"
# The stated budget of a job's photo work (README "Exhaust memory"): the decode's peak (Pillow's frame beside the
# RGB array, 7 B/px), then the photo beside Pillow's copy for the PNG encoder and the bytes it writes.
WORKER_BYTES_PER_PIXEL = 10
WORKER_SLACK_BYTES = 64 * MB  # the aligned crops at 4096² and 1024², strips, dlib


def photo_jpeg() -> bytes:
    photo = Image.open(str(REPO / "tests" / "fixtures" / "photos" / FIXTURE)).convert("RGB")
    buffer = io.BytesIO()
    photo.resize(PHOTO_SIZE, Image.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def landmarks() -> np.ndarray:
    """The fixture's recorded landmarks, in the upscaled photo's coordinates."""
    recorded = json.loads((REPO / "tests" / "fixtures" / "alignment" / "alignment.json").read_text())
    points = np.asarray(recorded[FIXTURE]["faces"][0]["landmarks"], dtype=np.float64)
    original = Image.open(str(REPO / "tests" / "fixtures" / "photos" / FIXTURE)).size
    return points * np.array([PHOTO_SIZE[0] / original[0], PHOTO_SIZE[1] / original[1]])


def worker_budget_bytes(pixels: int) -> int:
    return pixels * WORKER_BYTES_PER_PIXEL + WORKER_SLACK_BYTES


def _worker(folder: Path) -> Tuple[Callable[[], object], int]:
    from app.encoding import encode_image
    from app.faces.align import align_face
    from app.faces.decode import decode_image
    from app.faces.detect import FaceDetector
    from app.faces.paste import paste_faces

    data, points, detector = (folder / "photo.jpg").read_bytes(), landmarks(), FaceDetector()
    rect = [int(points[:, 0].min()), int(points[:, 1].min()), int(points[:, 0].max()), int(points[:, 1].max())]

    def work() -> bytes:
        rgb = decode_image(data)
        aligned = align_face(rgb, detector.landmarks(rgb, rect), 1024)
        return encode_image(paste_faces(rgb, [aligned.image], [aligned.quad], in_place=True))

    return work, worker_budget_bytes(PHOTO_SIZE[0] * PHOTO_SIZE[1])


def _repaste(fmt: str) -> Callable[[Path], Tuple[Callable[[], object], int]]:
    def case(folder: Path) -> Tuple[Callable[[], object], int]:
        from app.faces.align import face_quad
        from app.faces.decode import ImageLimits
        from app.faces.repaste import repaste_cost_bytes, repasted

        data, quad, limits = (folder / "photo.jpg").read_bytes(), face_quad(landmarks()), ImageLimits()
        toon = np.full((1024, 1024, 3), 128, np.uint8)
        return (lambda: repasted(data, [toon], [quad], fmt, limits)), repaste_cost_bytes(data, fmt, limits)

    return case


def _reencode(fmt: str) -> Callable[[Path], Tuple[Callable[[], object], int]]:
    def case(folder: Path) -> Tuple[Callable[[], object], int]:
        from app.faces.repaste import reencode_cost_bytes, reencoded

        png = (folder / "paste.png").read_bytes()
        return (lambda: reencoded(png, fmt)), reencode_cost_bytes(png, fmt)

    return case


CASES: Dict[str, Callable[[Path], Tuple[Callable[[], object], int]]] = {
    "worker: decode, landmarks, align, paste, PNG": _worker,
    "API: re-paste as PNG": _repaste("png"),
    "API: re-paste as JPEG": _repaste("jpeg"),
    "API: re-paste as WebP": _repaste("webp"),
    "API: re-encode a stored PNG as JPEG": _reencode("jpeg"),
    "API: re-encode a stored PNG as WebP": _reencode("webp"),
}


def measure(folder: Path, name: str) -> dict:
    work, budget = CASES[name](folder)
    row = peak_above_idle(work)
    return dict(row, path=name, budget_mb=budget / MB, within=row["peak_mb"] * MB <= budget)


def main(names: List[str]) -> None:
    if len(names) == 2 and names[1] in CASES:
        print(json.dumps(measure(Path(names[0]), names[1])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data = photo_jpeg()
        (Path(folder) / "photo.jpg").write_bytes(data)
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buffer, "PNG")  # a stored paste.png is as large as the photo
        (Path(folder) / "paste.png").write_bytes(buffer.getvalue())
        for name in names or list(CASES):
            out = subprocess.run([sys.executable, "-m", "bench.decode_memory", "--paths", folder, name],
                                 capture_output=True, text=True, check=True, cwd=str(REPO)).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    report("memory_paths", rows, ["path", "seconds", "peak_mb", "budget_mb", "within"])
