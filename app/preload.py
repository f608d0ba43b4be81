"""Fetch and verify the three model files (``preload.sh`` runs this). Standard library only for the
download, so the Docker image can fetch weights in a layer that holds no project code.

Resumable (``.part`` + Range), idempotent (verified files are skipped), atomic (verify, then rename), with
Google Drive's confirmation page followed and its quota page detected (spec §7.4)."""
from __future__ import annotations

import argparse
import hashlib
import html
import http.cookiejar
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

CDN = "https://nvlabs-fi-cdn.nvidia.com"
DRIVE_TOON_ID = "1H73TfV5gQ9ot7slSed_l-lim9X7pMRiU"
CHUNK = 1 << 20
USER_AGENT = "Mozilla/5.0 (toonify preload)"
# make-tiny writes this beside its random test models (stylegan2.model_files.MARKER_FILE; this module imports no
# project code, so the Docker models stage needs nothing else)
TINY_MARKER = "TINY-TEST-MODELS.txt"


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str
    env: str  # per-file URL override
    kind: str  # generator | perceptual
    min_bytes: int


FILES = (
    ModelFile("stylegan2-ffhq-config-f.pkl", CDN + "/stylegan2/networks/stylegan2-ffhq-config-f.pkl",
              "TOONIFY_URL_FFHQ", "generator", 300_000_000),
    ModelFile("ffhq-cartoon-blended-64.pkl", "https://drive.google.com/uc?export=download&id=" + DRIVE_TOON_ID,
              "TOONIFY_URL_TOON", "generator", 300_000_000),
    ModelFile("vgg16_zhang_perceptual.pkl", CDN + "/stylegan/networks/metrics/vgg16_zhang_perceptual.pkl",
              "TOONIFY_URL_VGG", "perceptual", 50_000_000),
)


class PreloadError(Exception):
    pass


class QuotaExceeded(PreloadError):
    pass


def file_url(spec: ModelFile, env: Dict[str, str]) -> str:
    if env.get(spec.env):
        return env[spec.env]
    mirror = env.get("TOONIFY_MODEL_MIRROR", "").rstrip("/")
    return "%s/%s" % (mirror, spec.name) if mirror else spec.url


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_header(path: Path, spec: ModelFile, min_bytes: int) -> None:
    size = path.stat().st_size
    with open(str(path), "rb") as handle:
        head = handle.read(64)
    if head.lstrip()[:1] == b"<":
        raise PreloadError("%s is an HTML page, not a model" % spec.name)
    if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
        raise PreloadError("%s is not a pickle (starts with %r)" % (spec.name, head[:8]))
    if size < min_bytes:
        raise PreloadError("%s is %d bytes; expected at least %d (truncated download?)" % (spec.name, size, min_bytes))


def check_structure(path: Path, spec: ModelFile, resolution: int) -> None:
    """What ``python -m stylegan2 inspect`` reports must be the model we need."""
    from stylegan2.cli import inspect_file
    from stylegan2.errors import ModelError

    try:
        info = inspect_file(str(path))
    except ModelError as exc:
        raise PreloadError("%s failed inspection: %s" % (spec.name, exc)) from None
    if spec.kind == "generator":
        generator = info.get("generator") or {}
        expected_ws = 2 * resolution.bit_length() - 4
        if (generator.get("resolution"), generator.get("num_ws")) != (resolution, expected_ws):
            raise PreloadError("%s is a %s generator; expected %d² with %d ws"
                               % (spec.name, generator.get("resolution"), resolution, expected_ws))
    elif info.get("perceptual", {}).get("convs") != 13 or info["perceptual"].get("taps") != 5:
        raise PreloadError("%s does not have the LPIPS-VGG16 13+5 layout" % spec.name)


class Downloader:
    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _open(self, url: str, offset: int):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if offset:
            request.add_header("Range", "bytes=%d-" % offset)
        return self.opener.open(request, timeout=60)

    def fetch(self, url: str, part: Path, hops: int = 3) -> None:
        """Download ``url`` into ``part``, resuming what is there and following Drive's confirmation page."""
        offset = part.stat().st_size if part.exists() else 0
        try:
            response = self._open(url, offset)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # already complete
                return
            raise PreloadError("%s answered HTTP %d" % (url, exc.code)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise PreloadError("cannot reach %s: %s" % (url, exc)) from None
        with response:
            if "text/html" in response.headers.get("Content-Type", ""):
                page = response.read(2_000_000).decode("utf-8", "replace")
                next_url = drive_next_url(page, url)
                if hops == 0 or next_url is None:
                    raise PreloadError("%s served a web page instead of the file" % url)
                self.fetch(next_url, part, hops - 1)
                return
            resumed = response.status == 206
            with open(str(part), "ab" if resumed else "wb") as out:
                shutil.copyfileobj(response, out, CHUNK)


def drive_next_url(page: str, url: str) -> Optional[str]:
    """The real download link on a Google Drive interstitial; QuotaExceeded on its quota page."""
    if re.search(r"Quota exceeded|Too many users have viewed or downloaded", page, re.I):
        raise QuotaExceeded("Google Drive refuses the download for now (quota exceeded)")
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"(.*?)</form>', page, re.S | re.I)
    if form:
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
        return html.unescape(form.group(1)) + "?" + urllib.parse.urlencode(fields)
    link = re.search(r'href="(/uc\?export=download[^"]+)"', page)
    if link:
        return urllib.parse.urljoin(url, html.unescape(link.group(1)))
    return None


def load_manifest(models_dir: Path) -> Dict[str, Dict[str, object]]:
    path = models_dir / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_tiny_test_model(path: Path, digest: str, manifest: Dict[str, Dict[str, object]]) -> bool:
    """A stand-in written by make-tiny: its folder carries make-tiny's marker and this content is not one that
    preload verified (those keep their sha256 in the folder's manifest.json)."""
    return (path.parent / TINY_MARKER).exists() and manifest.get(path.name, {}).get("sha256") != digest


def local_source(local_dir: Optional[Path], name: str) -> Optional[Path]:
    """The copy of ``name`` in TOONIFY_LOCAL_MODELS to use instead of downloading; never a tiny test model."""
    source = local_dir / name if local_dir is not None else None
    if source is None or not source.is_file():
        return None
    if is_tiny_test_model(source, sha256_of(source), load_manifest(source.parent)):
        print("skip     %s in %s: a tiny test model (%s there)" % (name, local_dir, TINY_MARKER))
        return None
    return source


def save_manifest(models_dir: Path, manifest: Dict[str, Dict[str, object]]) -> None:
    tmp = models_dir / "manifest.json.part"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(models_dir / "manifest.json")


@dataclass(frozen=True)
class Checks:
    """What preload verifies, and where it may copy from instead of downloading."""

    structural: bool = True  # also read each file with stylegan2's loader
    verify_only: bool = False  # check what is there, download nothing
    local_dir: Optional[Path] = None  # TOONIFY_LOCAL_MODELS
    resolution: int = 1024  # TOONIFY_EXPECT_RESOLUTION
    min_bytes: Optional[int] = None  # TOONIFY_MIN_MODEL_BYTES: overrides each file's size floor


def verify(path: Path, spec: ModelFile, checks: Checks) -> None:
    """The header and size checks, then (unless switched off) the structural one."""
    check_header(path, spec, spec.min_bytes if checks.min_bytes is None else checks.min_bytes)
    if checks.structural:
        check_structure(path, spec, checks.resolution)


def existing_is_good(dest: Path, spec: ModelFile, manifest: Dict[str, Dict[str, object]], checks: Checks) -> bool:
    """True when ``dest`` is verified (and recorded); False when it is a tiny test model to replace."""
    digest = sha256_of(dest)
    if is_tiny_test_model(dest, digest, manifest):
        if checks.verify_only:
            raise PreloadError("%s is a tiny test model (%s); run preload.sh without --verify-only for the real one"
                               % (spec.name, TINY_MARKER))
        print("replace  %s: a tiny test model (%s)" % (spec.name, TINY_MARKER))
        return False
    recorded = manifest.get(spec.name, {}).get("sha256")
    if recorded and recorded != digest:
        raise PreloadError("%s does not match the sha256 recorded in manifest.json" % spec.name)
    verify(dest, spec, checks)
    manifest[spec.name] = {"sha256": digest, "size": dest.stat().st_size}
    return True


def preload(models_dir: Path, env: Dict[str, str], checks: Checks) -> List[str]:
    """Returns problems (empty = every file present and verified). Tiny test models (make-tiny's marker beside
    them) count as absent: they are replaced, and the marker goes once every file is real."""
    models_dir.mkdir(parents=True, exist_ok=True)
    manifest, problems, downloader = load_manifest(models_dir), [], Downloader()
    for spec in FILES:
        dest, part = models_dir / spec.name, models_dir / (spec.name + ".part")
        try:
            if dest.exists() and existing_is_good(dest, spec, manifest, checks):
                print("ok       %s" % spec.name)
                continue
            if checks.verify_only:
                raise PreloadError("%s is missing" % spec.name)
            source = local_source(checks.local_dir, spec.name)
            if source is not None:
                shutil.copyfile(str(source), str(part))
            else:
                url = file_url(spec, env)
                print("fetch    %s from %s" % (spec.name, url))
                downloader.fetch(url, part)
            try:
                verify(part, spec, checks)
            except PreloadError:
                part.unlink()
                raise
            manifest[spec.name] = {"sha256": sha256_of(part), "size": part.stat().st_size}
            part.replace(dest)
            print("verified %s" % spec.name)
        except QuotaExceeded as exc:
            problems.append("%s: %s. Download %s in a browser and place it at %s, or set %s / TOONIFY_MODEL_MIRROR"
                            % (spec.name, exc, file_url(spec, env), dest, spec.env))
        except PreloadError as exc:
            problems.append("%s: %s" % (spec.name, exc))
    save_manifest(models_dir, manifest)
    marker = models_dir / TINY_MARKER
    if not problems and marker.exists():
        marker.unlink()
        print("removed  %s: %s holds the real weights now" % (TINY_MARKER, models_dir))
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="preload.sh", description=__doc__)
    parser.add_argument("--verify-only", action="store_true", help="check what is there, download nothing")
    parser.add_argument("--no-structural", action="store_true", help="skip the stylegan2 inspect check")
    parser.add_argument("--style", nargs=3, action="append", metavar=("NAME", "URL", "SHA256"), default=[],
                        help="also fetch a style into models/styles/NAME.pkl, kept only with this sha256 (repeatable)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    local = env.get("TOONIFY_LOCAL_MODELS")
    checks = Checks(not args.no_structural, args.verify_only, Path(local) if local else None,
                    int(env.get("TOONIFY_EXPECT_RESOLUTION", "1024")),
                    int(env["TOONIFY_MIN_MODEL_BYTES"]) if env.get("TOONIFY_MIN_MODEL_BYTES") else None)
    models_dir = Path(env.get("TOONIFY_MODELS_DIR", "models"))
    problems = preload(models_dir, env, checks)
    if args.style:
        from .preload_styles import fetch_styles  # project code, only when styles are asked for

        problems += fetch_styles(models_dir, args.style, checks)
    for problem in problems:
        print("error: %s" % problem, file=sys.stderr)
    if problems:
        print("error: %s" % how_to_provide(models_dir, checks), file=sys.stderr)
    return 1 if problems else 0


def how_to_provide(models_dir: Path, checks: Checks) -> str:
    """One line on getting the real weights in, for the folder preload fills (a Docker build's or the host's)."""
    if checks.local_dir is not None:  # the image build: its models/ comes from the build context
        return ("the image needs the real weights: run ./preload.sh on the host (it fills ./models, which the "
                "build copies) and build again, or build with --build-arg TOONIFY_MODEL_MIRROR=<URL of a folder "
                "holding the three files>")
    return ("the real weights go in %s: set TOONIFY_MODEL_MIRROR=<URL of a folder holding the three files> (or "
            "TOONIFY_URL_FFHQ / _TOON / _VGG) and run preload.sh again, or copy the files there" % models_dir)


if __name__ == "__main__":
    sys.exit(main())
