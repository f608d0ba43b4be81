"""Start-up mistakes, each answered by one line that names the setting to change, before any job is touched or
any model loads: a second process on a data folder, a taken port, the wrong engine for the environment,
settings that contradict each other, Redis away; and models that are missing or broken, explained in /readyz,
the 503 of an upload and /config (the page's banner)."""
from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from typing import Dict, List

import httpx
import pytest

from tests.app.server import Server, free_port, wait_for
from tests.conftest import PHOTOS, REPO

# Runs a CLI's main() in a fresh interpreter, then reports which frameworks it imported: none means no model
# was loaded (an engine imports its framework before it reads a model).
PROBE = ("import importlib, sys; code = importlib.import_module(sys.argv[1] + '.cli').main(sys.argv[2:]); "
         "print('frameworks:', sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'torch'})); "
         "sys.exit(code)")
# A refusal costs an interpreter start and the CLI's imports: about 0.5 s of CPU, where importing a framework and
# loading even the tiny models costs several seconds more. The bound is on the refusing process's CPU time, not on
# wall-clock seconds, so a busy CI machine (which stretches wall time, not CPU time) cannot fail it; ten times the
# usual cost leaves room for a slow machine.
REFUSED_WITHIN_CPU_S = 5.0
OTHER_ENGINE = {"tf1": "torch", "torch": "tf1"}


def _probe(module: str, args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, module] + args, cwd=str(REPO), capture_output=True,
                          text=True, env=env, timeout=120)


def _cpu_s_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _refused_in_start_up_time(module: str, args: List[str], env: Dict[str, str], *words: str) -> str:
    """The one-line refusal, with the CPU time the refusing process took (counted once it has been waited for)."""
    before = _cpu_s_of_children()
    line = _assert_refused(_probe(module, args, env), *words)
    cpu_s = _cpu_s_of_children() - before
    assert cpu_s < REFUSED_WITHIN_CPU_S, (cpu_s, line)
    return line


def _env(**settings: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOONIFY_")}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", **settings)
    return env


def _assert_refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """One line on stderr holding every word, a non-zero status, no traceback, no framework imported."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
    assert "frameworks: []" in result.stdout, result.stdout
    return lines[0]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wstats-cache")


def test_a_second_instance_on_the_data_folder_is_refused_and_the_running_job_goes_on(engine, tiny_models, tmp_path,
                                                                                     cache_dir):
    data = tmp_path / "data"
    first = Server(engine, tiny_models, data, cache_dir).start()
    try:
        with first.client() as client:
            photo = {"image": ("obama.jpg", (PHOTOS / "obama.jpg").read_bytes(), "image/jpeg")}
            job_id = client.post("/toonify?async=1", files=photo, data={"steps": "1500"}).json()["id"]
            running = wait_for(client, job_id, until=lambda job: job["step"] >= 2, timeout_s=180)
            second_env = dict(first.env, TOONIFY_PORT=str(free_port()))
            same_port_env = dict(first.env, TOONIFY_PORT=str(first.port))  # `make serve` run twice
            for env, words in ((second_env, ["TOONIFY_DATA_DIR", "pid %d" % first.process.pid,
                                             "port %d" % first.port, "TOONIFY_QUEUE=redis"]),
                               (same_port_env, ["TOONIFY_PORT=%d" % first.port, "already in use"])):
                _refused_in_start_up_time("app", ["serve"], env, *words)
            after = client.get("/jobs/%s" % job_id).json()
            later = wait_for(client, job_id, until=lambda job: job["step"] > after["step"] + 2, timeout_s=180)
            for job in (after, later):  # never put back in the queue, never started again
                assert job["status"] == "running" and job["attempts"] == 1 and job["step"] >= running["step"]
            assert later["step"] < 1500
            client.delete("/jobs/%s" % job_id)
        holder = json.loads((data / "toonify.lock").read_text())
        assert holder["pid"] == first.process.pid and holder["port"] == first.port
    finally:
        first.stop()
    assert "interrupted by the last stop" not in first.log.read_text()


def test_a_taken_port_is_one_line_naming_toonify_port_before_any_job_is_recovered(tmp_path, tiny_models, engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = _env(TOONIFY_ENGINE=engine, TOONIFY_MODELS_DIR=str(tiny_models), TOONIFY_DATA_DIR=str(tmp_path / "d"),
                   TOONIFY_PORT=str(port))
        _assert_refused(_probe("app", ["serve"], env), "TOONIFY_PORT=%d" % port, "already in use")
    assert not (tmp_path / "d").exists()  # no lock taken, no store opened, nothing recovered


MISTAKES = ["engine-toonify", "engine-serve", "engine-generate", "default-over-max-steps", "max-steps-over-limit",
            "not-positive", "redis-worker", "redis-workers", "redis-serve", "models-missing-worker",
            "bodies-in-flight-under-one-upload"]


def _mistakes(engine: str, photo: str, tiny_models: str, tmp: str):
    """MISTAKES → (module, arguments, settings, words the one line must hold)."""
    other = OTHER_ENGINE[engine]
    closed = "redis://127.0.0.1:%d/0" % free_port()
    models = dict(TOONIFY_MODELS_DIR=tiny_models, TOONIFY_DATA_DIR=tmp, TOONIFY_ENGINE=engine)
    return dict(zip(MISTAKES, [
        ("app", ["toonify", photo, "--out", tmp], dict(models, TOONIFY_ENGINE=other), [".venv/%s/bin/python" % other]),
        ("app", ["serve", "--port", str(free_port())], dict(models, TOONIFY_ENGINE=other),
         ["TOONIFY_ENGINE=%s" % other, ".venv/%s/bin/python" % other]),
        ("stylegan2", ["generate", "--engine", other, "--pkl", tiny_models + "/stylegan2-ffhq-config-f.pkl",
                       "--seeds", "0", "--out", tmp], {}, ["--engine %s" % other, ".venv/%s/bin/python" % other]),
        ("app", ["serve"], dict(models, TOONIFY_DEFAULT_STEPS="5000"),
         ["TOONIFY_DEFAULT_STEPS (5000) must not exceed TOONIFY_MAX_STEPS (2000)"]),
        ("app", ["serve"], dict(models, TOONIFY_MAX_STEPS="3000"), ["TOONIFY_MAX_STEPS must be at most 2000"]),
        ("app", ["toonify", photo], dict(models, TOONIFY_MAX_QUEUE="0", TOONIFY_WORKER_TTL_S="-1"),
         ["TOONIFY_MAX_QUEUE must be at least 1", "TOONIFY_WORKER_TTL_S must be at least 1"]),
        ("app", ["worker"], dict(models, TOONIFY_QUEUE="redis", TOONIFY_REDIS_URL=closed), ["TOONIFY_REDIS_URL"]),
        ("app", ["workers"], dict(models, TOONIFY_QUEUE="redis", TOONIFY_REDIS_URL=closed), ["TOONIFY_REDIS_URL"]),
        ("app", ["serve", "--port", str(free_port())], dict(models, TOONIFY_QUEUE="redis", TOONIFY_REDIS_URL=closed),
         ["TOONIFY_REDIS_URL=" + closed, "Redis does not answer"]),
        ("app", ["worker"], dict(models, TOONIFY_MODELS_DIR=tmp, TOONIFY_QUEUE="redis", TOONIFY_REDIS_URL=closed),
         ["stylegan2-ffhq-config-f.pkl", "preload.sh"]),
        ("app", ["serve"], dict(models, TOONIFY_MAX_BODY_BYTES_IN_FLIGHT="1000000"),
         ["TOONIFY_MAX_BODY_BYTES_IN_FLIGHT (1000000) must be at least TOONIFY_MAX_UPLOAD_BYTES", "one largest"]),
    ]))


@pytest.mark.parametrize("case", MISTAKES)
def test_each_start_up_mistake_is_one_line_before_any_model_loads(case, engine, tiny_models, tmp_path):
    module, args, settings, words = _mistakes(engine, str(PHOTOS / "obama.jpg"), str(tiny_models),
                                              str(tmp_path))[case]
    _refused_in_start_up_time(module, args, _env(**settings), *words)
    assert not (tmp_path / "jobs.sqlite3").exists()


def _broken_models(kind: str, tiny_models, folder):
    """An empty models folder, or tiny models with the FFHQ generator cut to half its size."""
    folder.mkdir()
    if kind == "truncated":
        for path in tiny_models.iterdir():
            if path.is_file():  # other tests may leave caches (folders) beside the models
                shutil.copy(str(path), str(folder / path.name))
        ffhq = folder / "stylegan2-ffhq-config-f.pkl"
        ffhq.write_bytes(ffhq.read_bytes()[: ffhq.stat().st_size // 2])
    return folder


@pytest.mark.parametrize("kind, words", [("missing", ["stylegan2-ffhq-config-f.pkl", "./preload.sh"]),
                                         ("truncated", ["stylegan2-ffhq-config-f.pkl is truncated",
                                                        "download it again"])])
def test_models_that_cannot_load_are_explained_by_readyz_the_503_and_the_config(kind, words, engine, tiny_models,
                                                                                tmp_path, cache_dir):
    models = _broken_models(kind, tiny_models, tmp_path / "models")
    server = Server(engine, models, tmp_path / "data", cache_dir).spawn().wait_until("/healthz")
    try:
        deadline = time.monotonic() + 180
        config = httpx.get(server.url + "/config").json()
        while config["models_loading"] and time.monotonic() < deadline:
            time.sleep(0.2)
            config = httpx.get(server.url + "/config").json()
        reason = config["models_error"]
        assert reason and all(word in reason for word in words) and "TOONIFY_MODELS_DIR" in reason, config
        assert str(models) not in reason  # public: file names, not the server's paths
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == reason
        upload = httpx.post(server.url + "/toonify", files={"image": ("obama.jpg", (PHOTOS / "obama.jpg").read_bytes(),
                                                                      "image/jpeg")}, timeout=60)
        assert upload.status_code == 503 and upload.json()["code"] == "models_failed"
        assert upload.json()["message"] == reason
    finally:
        server.stop()
