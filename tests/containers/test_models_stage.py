"""The image build after `make serve` and `make tiny-models`: each Dockerfile's models stage, built from a
context whose ./models holds make-tiny's models (what `make serve` left there before #23) and whose
.cache/tiny-models holds what it writes now, puts the real weights in /models — fetched here from a loopback
mirror, as `--build-arg TOONIFY_MODEL_MIRROR` does — and never the tiny ones."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from stylegan2.model_files import MARKER_FILE
from stylegan2.tiny import write_tiny_models
from tests.conftest import REPO
from tests.containers.docker import docker, unique
from tests.test_packaging import NAMES, ModelHost, make_tiny

# What the models stage copies from the context, and the .dockerignore that keeps the rest out.
STAGE_FILES = ("app/__init__.py", "app/preload.py", "preload.sh", "docker/tf1/Dockerfile", "docker/torch/Dockerfile",
               "docker/tf1/requirements.txt", "docker/torch/requirements.txt", ".dockerignore")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Model files that pass the checks the test build relaxes to 64² models: the 'real' weights here."""
    folder = tmp_path_factory.mktemp("mirror")
    write_tiny_models(folder, seed=0)
    server = ModelHost({name: (folder / name).read_bytes() for name in NAMES.values()})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def after_make_serve(context: Path) -> None:
    for name in STAGE_FILES:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(str(REPO / name), str(context / name))
    make_tiny(context / "models")
    write_tiny_models(context / ".cache" / "tiny-models", seed=3)


@pytest.mark.parametrize("dockerfile", ["docker/tf1/Dockerfile", "docker/torch/Dockerfile"])
def test_models_stage_fetches_the_real_weights_and_leaves_tiny_models_out(tmp_path, mirror, dockerfile):
    context, tag = tmp_path / "context", unique("toonify-test-models")
    after_make_serve(context)
    # the classic builder with the host's network, as scripts/test-containers.sh builds (the mirror is loopback)
    build = subprocess.run(
        ["docker", "build", "--network", "host", "--target", "models", "-f", str(context / dockerfile), "-t", tag,
         "--build-arg", "TOONIFY_MODEL_MIRROR=%s/good" % mirror.base, "--build-arg", "TOONIFY_MIN_MODEL_BYTES=10000",
         "--build-arg", "TOONIFY_EXPECT_RESOLUTION=64", str(context)],
        env=dict(os.environ, DOCKER_BUILDKIT="0"), capture_output=True, text=True, timeout=900)
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        assert build.stdout.count("skip     ") == 3 and build.stdout.count("fetch    ") == 3, build.stdout[-3000:]
        listing = docker("run", "--rm", "--entrypoint", "ls", tag, "-A", "/models").stdout.split()
        assert sorted(listing) == sorted(list(NAMES.values()) + ["manifest.json"])
        sums = docker("run", "--rm", "--entrypoint", "sha256sum", tag,
                      *["/models/" + name for name in NAMES.values()]).stdout
        for name, data in mirror.files.items():
            assert "%s  /models/%s" % (hashlib.sha256(data).hexdigest(), name) in sums
        assert MARKER_FILE not in listing
    finally:
        docker("image", "rm", "-f", tag, check=False)
