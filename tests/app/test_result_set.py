"""One result layout (issue 25.4): the same photo toonified through the API (real uvicorn; SQLite store with an
in-process worker, or Redis with a worker process) and through ``python -m app toonify`` leaves the same result
files under the same names, with the same faces and photo."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import pytest

from app.jobs.job import UPLOAD
from app.jobs.redis_store import files_key
from app.jobs.sqlite_store import SqliteJobStore
from tests.app.scale import Cluster
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS, run_cli

PHOTO = PHOTOS / "two-faces.jpg"
OPTIONS = {"face": "all", "steps": "2", "seed": "0", "strength": "0.7"}
EXPECTED = ["aligned_00.png", "aligned_01.png", "faces.json", "latents.npy", "paste.png", "photo.bin",
            "reconstruction_00.png", "reconstruction_01.png", "toon_00.png", "toon_01.png"]


def _toonify(client) -> Dict:
    created = client.post("/toonify?async=1", data=OPTIONS,
                          files={"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")})
    assert created.status_code == 202, created.text
    job = wait_for(client, created.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def _through_sqlite(engine: str, models: Path, root: Path) -> Tuple[list, Callable[[str], bytes]]:
    """The job folder's listing, and a reader of its files."""
    server = Server(engine, models, root / "data", root / "cache").start()
    try:
        with server.client() as client:
            job = _toonify(client)
    finally:
        server.stop()
    folder = SqliteJobStore(root / "data").job_dir(job["id"])
    return sorted(p.name for p in folder.iterdir()), lambda name: (folder / name).read_bytes()


def _through_redis(engine: str, models: Path, root: Path) -> Tuple[list, Callable[[str], bytes]]:
    """The fields of the job's files hash, and a reader of them."""
    cluster = Cluster(engine, models, root, root / "cache")
    try:
        with cluster.api.client() as client:
            cluster.workers.start("w1")
            cluster.wait_for_workers(client, ["w1"])
            job = _toonify(client)
        files = {name.decode(): data for name, data in cluster.redis.client().hgetall(files_key(job["id"])).items()}
    finally:
        cluster.close()
    return sorted(files), files.__getitem__


@pytest.mark.parametrize("through", [_through_sqlite, _through_redis], ids=["sqlite", "redis"])
def test_the_api_and_the_cli_write_the_same_result_set(engine, tiny_models, tmp_path, through):
    (tmp_path / "api").mkdir()
    job_files, read_job_file = through(engine, tiny_models, tmp_path / "api")

    flags = sum((["--" + name, value] for name, value in OPTIONS.items()), [])
    result = run_cli(["app", "toonify", str(PHOTO), "--out", str(tmp_path / "cli"), "--engine", engine,
                      "--models", str(tiny_models)] + flags)
    assert result.returncode == 0, result.stderr
    cli_folder = tmp_path / "cli" / PHOTO.stem
    cli_files = sorted(p.name for p in cli_folder.iterdir())

    assert [name for name in job_files if name != UPLOAD] == EXPECTED  # the layout stored jobs already hold
    assert [name for name in cli_files if name != "result.json"] == EXPECTED  # the CLI's own record besides
    for name in ("photo.bin", "faces.json"):
        assert read_job_file(name) == (cli_folder / name).read_bytes()
    api_latents = np.load(io.BytesIO(read_job_file("latents.npy")))
    cli_latents = np.load(str(cli_folder / "latents.npy"))
    assert api_latents.shape == cli_latents.shape == (2, 10, 512) and api_latents.dtype == cli_latents.dtype
