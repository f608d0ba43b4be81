"""The client as its users get it (#27): `pip install ./clients/python` into a fresh venv gives the `toonify`
command, which writes the result from a real server (tiny models, a real socket) and fails with the server's
message, not a traceback; the library's methods against the same server; the progress display."""
from __future__ import annotations

import io
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from toonify_client import Client, InvalidOption, NoFace, NotFinished, NotFound, NotSupported
from toonify_client import toonify as toonify_once
from toonify_client.bar import ProgressDisplay

from tests.app.client_venv import clean_env, client_venv, run, site_packages
from tests.app.server import Server, end_process, free_port, wait_for
from tests.conftest import PHOTOS

KEY = "client-key-123"


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wstats-cache")


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("client")
    srv = Server(engine, tiny_models, root / "data", cache_dir, api_keys=KEY).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory) -> Path:
    return client_venv(tmp_path_factory.mktemp("client-venv"))


@pytest.fixture()
def toonify(venv_bin, server, tmp_path) -> Callable:
    """Run the installed command in ``tmp_path``, against the server unless told ``--server``."""
    def command(*args: str, key: str = KEY, url: str = server.url):
        return run([str(venv_bin / "toonify"), "--server", url] + list(args), {"TOONIFY_API_KEY": key}, tmp_path)
    return command


def test_the_installed_package_needs_only_httpx(venv_bin):
    metadata = next(site_packages(venv_bin.parent).glob("toonify_client-*.dist-info")) / "METADATA"
    requires = [line.split(":", 1)[1].strip() for line in metadata.read_text().splitlines()
                if line.startswith("Requires-Dist:")]
    assert [re.match(r"[A-Za-z0-9_.-]+", spec).group(0) for spec in requires] == ["httpx"]
    module = run([str(venv_bin / "python"), "-m", "toonify_client", "--help"], {}, venv_bin)
    assert module.returncode == 0 and "--all-faces" in module.stdout


def test_command_writes_the_toon(toonify, tmp_path):
    done = toonify(str(PHOTOS / "astronaut.png"), "-o", "toon.png", "--steps", "3", "--strength", "0.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "toon.png"
    image = Image.open(str(tmp_path / "toon.png"))
    assert image.format == "PNG" and image.size == (64, 64)
    assert "\r" not in done.stderr and done.stderr.splitlines()[-1] == "succeeded"  # plain lines off a terminal
    again = toonify(str(PHOTOS / "astronaut.png"), "-o", "toon.png", "--steps", "3")
    assert again.returncode == 1 and "already there" in again.stderr
    replaced = toonify(str(PHOTOS / "astronaut.png"), "-o", "toon.png", "--steps", "3", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr


def test_command_all_faces(toonify, tmp_path):
    toons = toonify(str(PHOTOS / "two-faces.jpg"), "--all-faces", "-o", "faces.png", "--steps", "2")
    assert toons.returncode == 0, toons.stderr
    assert toons.stdout.split() == ["faces-00.png", "faces-01.png"]
    assert all(Image.open(str(tmp_path / name)).size == (64, 64) for name in toons.stdout.split())
    pasted = toonify(str(PHOTOS / "two-faces.jpg"), "--all-faces", "--output", "paste", "--format", "jpeg",
                     "--steps", "2")
    assert pasted.returncode == 0, pasted.stderr
    photo = Image.open(str(PHOTOS / "two-faces.jpg"))
    result = Image.open(str(tmp_path / "two-faces-paste.jpg"))
    assert result.format == "JPEG" and result.size == photo.size
    second = toonify(str(PHOTOS / "two-faces.jpg"), "--face", "1", "--steps", "2")
    assert second.returncode == 0 and second.stdout.split() == ["two-faces-toon.png"], second.stderr


def test_command_ctrl_c_cancels_the_job(venv_bin, server, tmp_path):
    # as from a terminal: Ctrl-C not ignored, although a suite started in the background inherits it ignored
    command = subprocess.Popen([str(venv_bin / "toonify"), "--server", server.url, str(PHOTOS / "obama.jpg"),
                                "--steps", "2000"], env=clean_env({"TOONIFY_API_KEY": KEY}), cwd=str(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        with server.client(headers={"Authorization": "Bearer " + KEY}) as http:
            job = wait_for_job(http, lambda job: job["options"].get("steps") == 2000 and job["step"] > 0)
            command.send_signal(signal.SIGINT)
            _, stderr = command.communicate(timeout=120)
            assert command.returncode == 130 and "cancelled" in stderr and "Traceback" not in stderr
            assert wait_for(http, job["id"])["status"] == "cancelled"
    finally:
        end_process(command, graceful=False)


def wait_for_job(http, found: Callable, timeout_s: float = 120) -> dict:
    """The newest job ``found`` accepts, once it exists (the command made it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job in http.get("/jobs").json()["jobs"]:
            if found(job):
                return job
        time.sleep(0.1)
    raise AssertionError("no such job within %ss" % timeout_s)


def test_command_fails_with_the_servers_message(toonify):
    no_face = toonify(str(PHOTOS / "chelsea.png"), "--steps", "2")
    assert no_face.returncode == 1 and "Traceback" not in no_face.stderr
    assert no_face.stderr.startswith("toonify: error: ") and "(422 no_face)" in no_face.stderr
    wrong_key = toonify(str(PHOTOS / "astronaut.png"), key="not-a-key")
    assert wrong_key.returncode == 1 and "(401 " in wrong_key.stderr and "Traceback" not in wrong_key.stderr
    style = toonify(str(PHOTOS / "astronaut.png"), "--style", "no-such-style", "--steps", "2")
    assert style.returncode == 1 and "style" in style.stderr and "Traceback" not in style.stderr
    nobody = toonify(str(PHOTOS / "astronaut.png"), url="http://127.0.0.1:%d" % free_port())
    assert nobody.returncode == 1 and "no answer from" in nobody.stderr and "Traceback" not in nobody.stderr
    url = toonify("--url", "http://127.0.0.1:9/photo.jpg")
    assert url.returncode == 1 and "URL" in url.stderr and "Traceback" not in url.stderr


def test_library(server):
    photo = PHOTOS / "astronaut.png"
    with Client(server.url, api_key=KEY) as client:
        by_path = client.toonify(photo, steps=3, seed=81)
        with open(str(photo), "rb") as opened:
            by_file = client.toonify(opened, steps=3, seed=81)
        assert _rgb(by_path).shape == (64, 64, 3)
        assert client.toonify(photo.read_bytes(), steps=3, seed=81) == by_file == by_path  # the same job's result
        assert toonify_once(photo, server.url, api_key=KEY, steps=3, seed=81) == by_path
        faces = client.faces(PHOTOS / "two-faces.jpg")
        assert [face["index"] for face in faces["faces"]] == [0, 1] and faces["width"] > 0

        job = client.submit(PHOTOS / "obama.jpg", steps=12, seed=82)
        states = list(client.progress(job["id"]))
        assert states[-1]["status"] == "succeeded" and states[-1]["step"] == 12
        assert client.wait(job["id"])["status"] == "succeeded"
        rendered = _rgb(client.render(job["id"], strength=0.3))
        assert np.array_equal(rendered, _rgb(client.result(job["id"], kind="toon", strength=0.3)))
        assert not np.array_equal(rendered, _rgb(client.render(job["id"], strength=1.0)))
        assert job["id"] in [listed["id"] for listed in client.jobs()]
        last = list(client.events(job["id"]))[-1]["id"]
        assert list(client.events(job["id"], last_event_id=last)) == []  # resumed after the end: nothing new

        with pytest.raises(NoFace) as no_face:
            client.toonify(PHOTOS / "chelsea.png")
        assert no_face.value.status == 422 and no_face.value.code == "no_face" and no_face.value.message
        with pytest.raises(InvalidOption) as refused:
            client.toonify(photo, stenght=0.5)
        assert refused.value.status == 422 and "stenght" in refused.value.message
        with pytest.raises(NotFound):  # an error answer on the event stream is typed too
            list(client.progress("no-such-job"))
        # the server documents image_url, so the client sends it, and the server's SSRF guard refuses loopback
        assert client.accepts_urls()
        with pytest.raises(InvalidOption) as loopback:
            client.toonify(url="http://127.0.0.1:9/photo.jpg")
        assert loopback.value.status == 422 and "private or local address" in loopback.value.message
        client._takes_urls = False  # as an older server's OpenAPI (no image_url field) tells it
        with pytest.raises(NotSupported):  # …the client does not send a field the server would refuse
            client.toonify(url="http://127.0.0.1:9/photo.jpg")


def test_progress_resumes_across_a_server_restart(engine, tiny_models, tmp_path, cache_dir):
    server = Server(engine, tiny_models, tmp_path / "data", cache_dir).start()
    try:
        with Client(server.url) as client:
            job = client.submit(PHOTOS / "obama.jpg", steps=2000)
            states = []
            for state in client.progress(job["id"]):
                states.append(state)
                if state["attempts"] == 1 and state["step"] > 0 and server.process.poll() is None:
                    server.kill()  # the stream drops mid-job; the restarted server runs the job again
                    server.spawn()
                elif state["attempts"] == 2 and state["status"] == "running":
                    client.cancel(job["id"])
            with pytest.raises(NotFinished):
                client.wait(job["id"])
        assert states[-1]["status"] == "cancelled" and states[-1]["attempts"] == 2
        assert any(state["attempts"] == 1 and state["step"] > 0 for state in states)
    finally:
        server.stop()


def test_progress_display_redraws_one_line_on_a_terminal():
    out = io.StringIO()
    display = ProgressDisplay(out, tty=True)
    for step in (1, 2):
        display.update({"status": "running", "stage": "projecting", "step": step, "total": 4, "eta_s": 3.0})
    display.update({"status": "succeeded", "stage": "done", "step": 4, "total": 4})
    display.close()
    assert out.getvalue().count("\n") == 1 and out.getvalue().count("\r") == 3
    assert "[############------------]  50% projecting 2/4, ETA 3 s" in out.getvalue()
