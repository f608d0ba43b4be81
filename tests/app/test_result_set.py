"""One result layout (issue 25.4): the same photo toonified through the API (real uvicorn, SQLite store) and
through ``python -m app toonify`` leaves the same result files under the same names, with the same latents."""
from __future__ import annotations

import numpy as np

from app.jobs.job import UPLOAD
from app.jobs.sqlite_store import SqliteJobStore
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS, run_cli

OPTIONS = {"face": "all", "steps": "2", "seed": "0", "strength": "0.7"}
EXPECTED = ["aligned_00.png", "aligned_01.png", "faces.json", "latents.npy", "paste.png", "photo.bin",
            "reconstruction_00.png", "reconstruction_01.png", "toon_00.png", "toon_01.png"]


def test_the_api_and_the_cli_write_the_same_result_set(engine, tiny_models, tmp_path):
    photo = PHOTOS / "two-faces.jpg"
    server = Server(engine, tiny_models, tmp_path / "data", tmp_path / "cache").start()
    try:
        with server.client() as client:
            created = client.post("/toonify?async=1", data=OPTIONS,
                                  files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
            assert created.status_code == 202, created.text
            job = wait_for(client, created.json()["id"])
    finally:
        server.stop()
    assert job["status"] == "succeeded", job
    job_folder = SqliteJobStore(tmp_path / "data").job_dir(job["id"])

    flags = sum((["--" + name, value] for name, value in OPTIONS.items()), [])
    result = run_cli(["app", "toonify", str(photo), "--out", str(tmp_path / "cli"), "--engine", engine,
                      "--models", str(tiny_models)] + flags)
    assert result.returncode == 0, result.stderr
    cli_folder = tmp_path / "cli" / "two-faces"

    job_files = sorted(p.name for p in job_folder.iterdir())
    cli_files = sorted(p.name for p in cli_folder.iterdir())
    assert [name for name in job_files if name != UPLOAD] == EXPECTED  # the layout stored jobs already hold
    assert [name for name in cli_files if name != "result.json"] == EXPECTED  # the CLI's own record besides
    for name in ("photo.bin", "faces.json"):
        assert (job_folder / name).read_bytes() == (cli_folder / name).read_bytes()
    api_latents, cli_latents = (np.load(str(folder / "latents.npy")) for folder in (job_folder, cli_folder))
    assert api_latents.shape == cli_latents.shape == (2, 10, 512) and api_latents.dtype == cli_latents.dtype
