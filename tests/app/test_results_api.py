"""The job view and its results over real uvicorn (issue 27.4), on both stacks (SQLite with an in-process
worker, API keys on; Redis with a worker process): stage timings and the total in the view, a face's latents
as a .npy that renders the same toon, Content-Disposition names on every answer, the archive of every result,
and the 404 / 409 answers that stay as they were."""
from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import threading
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from PIL import Image

from app.jobs.job import NewJob
from app.jobs.redis_store import RENDER_QUEUE, files_key
from app.jobs.sqlite_store import SqliteJobStore
from app.options import ToonifyOptions
from stylegan2.model_files import STUDENT_FILE
from stylegan2.student import init_student, save_student
from tests.app.disk import SmallDisk, can_mount
from tests.app.scale import Cluster
from tests.app.server import Server, wait_for
from tests.conftest import PHOTOS

KEY = "results-key-123"
STAGES = ["queued_s", "decoding_s", "aligning_s", "projecting_s", "synthesizing_s", "pasting_s", "saving_s"]
FORMATS = {"png": ("image/png", "png"), "jpeg": ("image/jpeg", "jpg"), "webp": ("image/webp", "webp")}


def _photo(name: str) -> Dict:
    return {"image": (name, (PHOTOS / name).read_bytes(), "application/octet-stream")}


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory) -> Path:
    """The tiny models plus an untrained fast-mode student (it returns its input: enough for headers)."""
    folder = tmp_path_factory.mktemp("models-with-student")
    for item in tiny_models.iterdir():
        if item.is_file():
            shutil.copy(str(item), str(folder / item.name))
    save_student(init_student(64, channels=(8, 16, 32, 32)), folder / STUDENT_FILE)
    return folder


@pytest.fixture(scope="module", params=["local", "redis"])
def stack(request, engine, models, tmp_path_factory) -> Iterator[Dict]:
    """A running service and a client for it: local (SQLite, API keys on) or redis (one worker, no keys)."""
    root = tmp_path_factory.mktemp("results-" + request.param)
    cache = tmp_path_factory.getbasetemp() / "results-wstats"
    if request.param == "local":
        server = Server(engine, models, root / "data", cache, api_keys=KEY).start()
        client = server.client(headers={"Authorization": "Bearer " + KEY})
        try:
            yield {"name": "local", "client": client, "server": server}
        finally:
            client.close()
            server.stop()
        return
    cluster = Cluster(engine, models, root, cache)
    client = cluster.api.client()
    try:
        cluster.workers.start("w1")
        cluster.wait_for_workers(client, ["w1"])
        yield {"name": "redis", "client": client, "cluster": cluster}
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def job(stack) -> Dict:
    """Two faces, projected a few steps, at strength 0.8 as JPEG: the job's own look and format."""
    client = stack["client"]
    created = client.post("/toonify?async=1", files=_photo("two-faces.jpg"),
                          data={"face": "all", "steps": "3", "strength": "0.8", "format": "jpeg"})
    assert created.status_code == 202, created.text
    done = wait_for(client, created.json()["id"])
    assert done["status"] == "succeeded", done
    return done


def _with(link: str, **params: object) -> str:
    """A view's link with more query fields (httpx's params= would replace its query, signature included)."""
    return link + ("&" if "?" in link else "?") + urlencode(params)


def _disposition(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["content-disposition"]


def test_the_view_has_stage_timings_and_the_total(job):
    timings = job["timings"]
    assert list(timings) == STAGES, timings
    assert all(seconds >= 0 for seconds in timings.values())
    assert timings["projecting_s"] > 0
    assert job["total_s"] == pytest.approx(job["finished_at"] - job["created_at"], abs=0.002)
    assert sum(timings.values()) <= job["total_s"] + 0.01


def test_an_unfinished_job_has_no_results_and_no_total_yet(stack):
    client = stack["client"]
    created = client.post("/toonify?async=1", files=_photo("obama.jpg"), data={"steps": "2000"})
    assert created.status_code == 202, created.text
    view = created.json()
    assert view["total_s"] is None and set(view["timings"]) <= set(STAGES[:3]), view["timings"]
    results = "/jobs/%s/result" % view["id"]
    assert client.get(results).status_code == 409  # not finished: no results, no archive
    assert client.get(results, params={"kind": "latents"}).status_code == 409
    assert client.get("/jobs/%s/archive" % view["id"]).status_code == 409
    assert client.delete("/jobs/%s" % view["id"]).status_code == 200
    done = wait_for(client, view["id"])
    assert done["status"] == "cancelled" and done["total_s"] >= 0


def test_latents_download_renders_the_same_toon(job, stack, engine, tiny_models):
    client, short = stack["client"], job["id"][:8]
    links = job["links"]["results"]
    assert [link["latents"].split("?")[0] for link in links] == ["/jobs/%s/result" % job["id"]] * 2
    response = client.get(links[1]["latents"])
    assert response.headers["content-type"] == "application/octet-stream"
    assert _disposition(response) == 'attachment; filename="toonify-%s-face1-latents.npy"' % short
    latents = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert latents.shape == (10, 512) and latents.dtype == np.float32  # tiny models: 64², num_ws 10 (18 at 1024²)

    from app.config import Settings
    from app.toonify import Toonify

    toonify = Toonify(Settings(engine=engine, models_dir=tiny_models)).setup()
    again = client.get("/jobs/%s/result" % job["id"], params={"face": 1, "strength": 0.5})
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(again.content))),
                                  toonify.synthesize(latents[None], 0.5)[0])
    other = np.load(io.BytesIO(client.get(links[0]["latents"]).content))
    assert not np.array_equal(latents, other)


def test_unknown_faces_and_jobs_are_404(job, stack):
    client, results = stack["client"], "/jobs/%s/result" % job["id"]
    for params in ({"face": 2}, {"face": 2, "strength": 0.3}, {"face": 2, "kind": "latents"},
                   {"face": 2, "kind": "aligned"}):
        response = client.get(results, params=params)
        assert response.status_code == 404 and "face 2 does not exist" in response.json()["message"], params
    assert client.get("/jobs/nope/archive").status_code == 404
    assert client.get("/jobs/nope/result", params={"kind": "latents"}).status_code == 404


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_image_answer_names_its_file(job, stack, fmt):
    client, short, base = stack["client"], job["id"][:8], "/jobs/%s" % job["id"]
    media, ext = FORMATS[fmt]
    expected = {
        ("toon", 1, None): "face1-toon-cartoon-0.80",
        ("toon", 0, 0.5): "face0-toon-cartoon-0.50",
        ("aligned", 1, None): "face1-aligned",
        ("reconstruction", 0, None): "face0-reconstruction",
        ("paste", 0, None): "paste-cartoon-0.80",
        ("paste", 0, 0.25): "paste-cartoon-0.25",
    }
    for (kind, face, strength), name in expected.items():
        params = {"kind": kind, "face": face, "format": fmt}
        if strength is not None:
            params["strength"] = strength
        response = client.get(base + "/result", params=params)
        assert response.headers["content-type"] == media
        assert _disposition(response) == 'inline; filename="toonify-%s-%s.%s"' % (short, name, ext), params
        Image.open(io.BytesIO(response.content)).load()
    rendered = client.post(base + "/render", params={"strength": 0.6, "face": 1, "format": fmt})
    assert _disposition(rendered) == 'inline; filename="toonify-%s-face1-toon-cartoon-0.60.%s"' % (short, ext)
    every = client.get(base + "/result", params={"style": "all", "face": 1, "format": fmt})
    assert every.headers["content-type"] == "application/zip"
    assert _disposition(every) == 'attachment; filename="toonify-%s-face1-toon-all.zip"' % short
    assert zipfile.ZipFile(io.BytesIO(every.content)).namelist() == ["cartoon_toon_01.%s" % ext]


def test_waiting_creates_name_their_files_too(job, stack):
    client, short = stack["client"], job["id"][:8]  # the same photo and projection: answered from the job
    photo, options = _photo("two-faces.jpg"), {"face": "all", "steps": "3"}
    pasted = client.post("/toonify", files=photo, data=dict(options, output="paste", strength="0.8"))
    assert _disposition(pasted) == 'inline; filename="toonify-%s-paste-cartoon-0.80.png"' % short
    faces = client.post("/toonify", files=photo, data=dict(options, output="aligned", format="webp"))
    assert _disposition(faces) == 'attachment; filename="toonify-%s-faces-aligned.zip"' % short
    assert zipfile.ZipFile(io.BytesIO(faces.content)).namelist() == ["aligned_00.webp", "aligned_01.webp"]
    styles = client.post("/toonify", files=photo, data=dict(options, style="all", strength="0.5"))
    assert _disposition(styles) == 'attachment; filename="toonify-%s-faces-toon-all-0.50.zip"' % short


def test_fast_mode_names_its_file(stack):
    if stack["name"] != "local":
        pytest.skip("method=fast runs in the API process: the local stack's has the student")
    client = stack["client"]
    for data, name in (({}, "face0-toon-cartoon-1.00.png"), ({"output": "paste", "format": "jpeg"},
                                                              "paste-cartoon-1.00.jpg"),
                       ({"output": "aligned", "face": "1"}, "face1-aligned.png")):
        response = client.post("/toonify", files=_photo("two-faces.jpg"), data=dict(data, method="fast"))
        assert response.headers["x-toonify-method"] == "fast"
        assert _disposition(response) == 'inline; filename="toonify-fast-%s"' % name, data


def _members(response: httpx.Response) -> Dict[str, bytes]:
    assert response.headers["content-type"] == "application/zip"
    assert int(response.headers["content-length"]) == len(response.content)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    return {name: archive.read(name) for name in archive.namelist()}


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _names(ext: str, faces: int, prefixes: List[str]) -> List[str]:
    names = [prefix + "toon_%02d.%s" % (face, ext) for prefix in prefixes for face in range(faces)]
    for face in range(faces):
        names += ["aligned_%02d.%s" % (face, ext), "reconstruction_%02d.%s" % (face, ext), "latents_%02d.npy" % face]
    return names + [prefix + "paste.%s" % ext for prefix in prefixes]


def test_the_archive_holds_every_result(job, stack):
    client, short = stack["client"], job["id"][:8]
    response = client.get(job["links"]["archive"])
    assert _disposition(response) == 'attachment; filename="toonify-%s-results-cartoon-0.80.zip"' % short
    members = _members(response)
    assert list(members) == _names("jpg", 2, [""])  # the job's own look and format
    for name, data in members.items():
        if name.endswith(".npy"):
            assert np.load(io.BytesIO(data)).shape == (10, 512)
        else:
            assert Image.open(io.BytesIO(data)).format == "JPEG"
    results = job["links"]["results"]
    assert members["toon_01.jpg"] == client.get(_with(results[1]["toon"], format="jpeg")).content
    assert members["latents_00.npy"] == client.get(results[0]["latents"]).content

    other = client.get(_with(job["links"]["archive"], strength=0.3, format="png"))
    assert _disposition(other) == 'attachment; filename="toonify-%s-results-cartoon-0.30.zip"' % short
    members = _members(other)
    assert list(members) == _names("png", 2, [""])
    toon = client.get(_with(results[0]["toon"], strength=0.3))  # alone: a batch of one, within one level of two
    assert np.abs(_rgb(members["toon_00.png"]).astype(int) - _rgb(toon.content)).max() <= 1
    paste = client.get(_with(job["links"]["paste"], strength=0.3))
    assert members["paste.png"] == paste.content
    every = client.get(_with(job["links"]["archive"], style="all"))
    assert _disposition(every) == 'attachment; filename="toonify-%s-results-all.zip"' % short
    assert list(_members(every)) == _names("jpg", 2, ["cartoon_"])
    head = client.head(job["links"]["archive"])
    assert head.status_code == 200 and head.headers["content-disposition"].startswith("attachment;")


def test_links_are_signed_with_api_keys(job, stack):
    if stack["name"] != "local":
        pytest.skip("the local stack runs with API keys")
    links = job["links"]
    assert "sig=" in links["archive"] and all("sig=" in result["latents"] for result in links["results"])
    with stack["server"].client() as anonymous:  # no key: the signed links alone
        assert anonymous.get("/jobs/%s/archive" % job["id"]).status_code == 401
        assert anonymous.get(links["archive"]).status_code == 200
        assert anonymous.get(links["results"][0]["latents"]).status_code == 200
        forged = re.sub(r"sig=([^&]+)", lambda m: "sig=" + m.group(1)[::-1], links["archive"])  # same length
        assert anonymous.get(forged).status_code == 403


def test_created_views_carry_the_requests_look_on_the_archive_link(job, stack):
    client = stack["client"]
    again = client.post("/toonify?async=1", files=_photo("two-faces.jpg"),
                        data={"face": "all", "steps": "3", "strength": "0.4", "format": "png"})
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    links = again.json()["links"]
    assert "strength=0.4" in links["archive"] and "format=png" in links["archive"]
    assert "strength" not in links["results"][0]["latents"]
    members = _members(client.get(links["archive"]))
    assert list(members) == _names("png", 2, [""])


class _Monitor:
    """Redis MONITOR in a thread: the commands the server sends while a request runs (from a marker on)."""

    def __init__(self, redis_client) -> None:
        self.redis, self.commands, self.started = redis_client, [], threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with self.redis.monitor() as monitor:
            for event in monitor.listen():
                command = event["command"]
                if "results-test-start" in command:
                    self.started.set()
                elif "results-test-end" in command:
                    return
                elif self.started.is_set():
                    self.commands.append(command)

    def __enter__(self) -> "_Monitor":
        self.thread.start()
        while not self.started.wait(0.05):
            self.redis.echo("results-test-start")
        return self

    def __exit__(self, *exc) -> None:
        self.redis.echo("results-test-end")
        self.thread.join(10)


def test_a_rerender_reads_no_stored_image(job, stack):
    """The 404 / 409 checks ask whether the stored image is there; only an answer that sends it reads it."""
    if stack["name"] != "redis":
        pytest.skip("Redis MONITOR shows every file read")
    client, files = stack["client"], "toonify:job:%s:files" % job["id"]
    redis_client = stack["cluster"].redis.client()
    results = "/jobs/%s/result" % job["id"]
    with _Monitor(redis_client) as rerendered:
        assert client.get(results, params={"face": 1, "strength": 0.2}).status_code == 200
        assert client.get(results, params={"kind": "paste", "strength": 0.2}).status_code == 200
    with _Monitor(redis_client) as stored:
        assert client.get(results, params={"face": 1}).status_code == 200
        assert client.get(results, params={"kind": "paste"}).status_code == 200
    for name in ("toon_01.png", "paste.png"):
        assert any(command.startswith("HGET %s %s" % (files, name)) for command in stored.commands), stored.commands
        assert not any(command.startswith("HGET") and name in command for command in rerendered.commands)
        assert any(command.startswith("HEXISTS %s %s" % (files, name)) for command in rerendered.commands)


def _job_files(stack: Dict, job_id: str) -> Tuple[Callable[[str], Optional[bytes]], Callable[[str, bytes], None]]:
    """A reader and a writer of a job's stored files where its store keeps them (its folder; its Redis hash)."""
    if stack["name"] == "redis":
        redis_client, key = stack["cluster"].redis.client(), files_key(job_id)
        return (lambda name: redis_client.hget(key, name)), (lambda name, data: redis_client.hset(key, name, data))
    folder = SqliteJobStore(Path(stack["server"].env["TOONIFY_DATA_DIR"])).job_dir(job_id)
    return (lambda name: (folder / name).read_bytes() if (folder / name).is_file() else None,
            lambda name, data: (folder / name).write_bytes(data))


def test_a_transcode_is_made_once_and_kept_with_the_job(job, stack):
    client = stack["client"]
    read, write = _job_files(stack, job["id"])
    link = _with(job["links"]["results"][1]["reconstruction"], format="webp")
    first = client.get(link)
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(first.content)).format == "WEBP"
    assert read("reconstruction_01.webp") == first.content  # kept beside reconstruction_01.png
    other = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(other, "WEBP")
    write("reconstruction_01.webp", other.getvalue())  # what an encode of the stored PNG would never give
    try:
        assert client.get(link).content == other.getvalue()  # the second request reads the kept file
    finally:
        write("reconstruction_01.webp", first.content)


def test_a_paste_or_archive_at_another_strength_rerenders_every_face_in_one_go(job, stack, engine, tiny_models):
    """One synthesis of both faces (the same pixels as the job's latents synthesized together), one RQ task in
    Redis mode; a face asked for alone is its own batch of one, within one level of the batch of two (float
    sums in another order)."""
    from app.config import Settings
    from app.faces.decode import ImageLimits
    from app.faces.repaste import repasted
    from app.toonify import Toonify

    client, links = stack["client"], job["links"]
    latents = np.stack([np.load(io.BytesIO(client.get(face["latents"]).content)) for face in links["results"]])
    settings = Settings(engine=engine, models_dir=tiny_models)
    together = Toonify(settings).setup().synthesize(latents, 0.35)
    read, _ = _job_files(stack, job["id"])
    quads = [np.asarray(face["quad"]) for face in json.loads(read("faces.json"))]
    if stack["name"] == "redis":
        with _Monitor(stack["cluster"].redis.client()) as monitor:
            paste = client.get(_with(links["paste"], strength=0.35))
        enqueued = [c for c in monitor.commands if c.startswith(("RPUSH", "LPUSH")) and RENDER_QUEUE in c]
        assert len(enqueued) == 1, enqueued  # both faces in one round trip
    else:
        paste = client.get(_with(links["paste"], strength=0.35))
    limits = ImageLimits.from_settings(settings)
    assert paste.content == repasted(read("photo.bin"), list(together), quads, "png", limits)
    members = _members(client.get(_with(links["archive"], strength=0.35, format="png")))
    for face in range(2):
        toon = _rgb(members["toon_%02d.png" % face])
        np.testing.assert_array_equal(toon, together[face])
        alone = _rgb(client.get(_with(links["results"][face]["toon"], strength=0.35)).content)
        assert np.abs(alone.astype(int) - toon).max() <= 1


def test_an_old_database_gains_the_timings_column(tmp_path):
    """A jobs table made before timings existed is migrated in place: its rows read with no timings."""
    data = tmp_path / "data"
    data.mkdir()
    old = sqlite3.connect(str(data / "jobs.sqlite3"))
    old.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, stage TEXT NOT NULL DEFAULT 'queued', "
                "step INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, options TEXT NOT NULL, "
                "cache_key TEXT NOT NULL, faces TEXT NOT NULL DEFAULT '[]', attempts INTEGER NOT NULL DEFAULT 0, "
                "error_code TEXT, error_message TEXT, worker TEXT, created_at REAL NOT NULL, started_at REAL, "
                "updated_at REAL NOT NULL, finished_at REAL)")
    old.execute("INSERT INTO jobs (id, status, options, cache_key, created_at, updated_at) "
                "VALUES ('old', 'succeeded', '{}', 'k', 1.0, 2.0)")
    old.commit()
    old.close()
    store = SqliteJobStore(data)
    assert store.get("old").timings == {}
    store.create("new", NewJob("", ToonifyOptions(), "k2", []), b"photo")
    claimed = store.claim_next("w")
    assert claimed.id == "new" and claimed.timings == {}
    store.progress("new", "aligning", timings={"decoding": 0.5})
    store.progress("new", "projecting", 1, 10)  # a step keeps the timings
    assert store.get("new").timings == {"decoding": 0.5}
    store.requeue("new")
    assert store.get("new").timings == {}
    assert SqliteJobStore(data).get("old").timings == {}  # opened again: nothing to migrate


def _until_freed(disk: SmallDisk, empty: int, timeout_s: float = 10) -> None:
    """Until the temporary disk is as free as it was (the server closes a file just after its last byte)."""
    deadline = time.monotonic() + timeout_s
    while disk.free_bytes() < empty - 8192:
        assert time.monotonic() < deadline, "%d bytes still held in TMPDIR" % (empty - disk.free_bytes())
        time.sleep(0.05)


@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root (and CAP_SYS_ADMIN)")
def test_an_archive_that_does_not_fit_in_tmpdir_is_507(engine, tiny_models, tmp_path):
    """The archive is spooled to TMPDIR: a full one is the 507 of a full disk, and the file is given up."""
    disk = SmallDisk(tmp_path / "tmp", size_mb=4)
    server = Server(engine, tiny_models, tmp_path / "data", tmp_path / "cache")
    server.env["TMPDIR"] = str(disk.path)
    try:
        server.start()
        with server.client() as client:
            created = client.post("/toonify?async=1", files=_photo("two-faces.jpg"), data={"steps": "2"})
            done = wait_for(client, created.json()["id"])
            assert done["status"] == "succeeded", done
            empty = disk.free_bytes()
            whole = client.get(done["links"]["archive"])
            assert whole.status_code == 200 and len(whole.content) > 300_000  # the pasted 921x512 photo's PNG
            _until_freed(disk, empty)  # once sent, the archive's file is given up
            disk.fill(leave_bytes=len(whole.content) // 2)  # the face images fit, the paste does not
            full = client.get(done["links"]["archive"])
            assert full.status_code == 507 and full.json()["code"] == "storage_full", full.text
            assert "Retry-After" in full.headers
            disk.free()
            _until_freed(disk, empty)  # and so is a half-written one
        with server.client() as fresh:  # not the connection left idle while the disk was freed (a keep-alive race)
            assert fresh.get(done["links"]["archive"]).content == whole.content  # members dated by the job
    finally:
        server.stop()
        disk.unmount()


def test_archives_at_once_are_bounded_and_a_dropped_one_gives_its_slot_back():
    import gc

    from app.errors import ServerBusy
    from app.rendering import ARCHIVES_AT_ONCE, SpooledZip

    held = [SpooledZip(0.0) for _ in range(ARCHIVES_AT_ONCE)]
    with pytest.raises(ServerBusy, match="archives already") as busy:
        SpooledZip(0.0)
    assert busy.value.retry_after_s
    held.pop().close()  # streamed to the end
    held.append(SpooledZip(0.0))
    held.pop()  # a response that was never streamed (the client left first) is dropped
    gc.collect()
    held.append(SpooledZip(0.0))
    for spool in held:
        spool.close()
        spool.close()  # at most once
    assert [SpooledZip(0.0).close() for _ in range(ARCHIVES_AT_ONCE + 1)]
