"""The web page in a real headless Chromium (Debian's), driven by Playwright: upload a photo, watch the
progress bar move, see the toon appear. The screenshot is kept as a test artifact."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.app.server import Server
from tests.conftest import PHOTOS, REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TOONIFY_TEST_ARTIFACTS", str(REPO / "bench" / "results" / "artifacts")))
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright lives in the torch venv (py3.8+)")


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    srv = Server(engine, tiny_models, root / "data", root / "cache").start()
    yield srv
    srv.stop()


def test_upload_progress_and_toon_in_headless_chromium(server):
    assert Path(CHROMIUM).exists(), "Debian's chromium is installed by the README's test command"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(server.url + "/")
        page.fill("#steps", "60")
        page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
        page.wait_for_function("document.getElementById('bar').value > 0 && document.getElementById('bar').value < 1",
                               timeout=60000)
        moving = page.eval_on_selector("#bar", "b => b.value")
        page.wait_for_selector("#toon img", timeout=120000)
        page.wait_for_function("['#toon img', '#paste img', '#aligned img'].every(s => "
                               "document.querySelector(s) && document.querySelector(s).naturalWidth > 0)",
                               timeout=30000)
        assert 0 < moving < 1
        assert page.eval_on_selector("#toon img", "img => img.naturalWidth") == 64
        assert page.eval_on_selector("#paste img", "img => img.naturalWidth") == 512
        assert "Done: 1 face" in page.inner_text("#status")
        page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
        page.eval_on_selector("#strength", "s => { s.value = 0.3; s.dispatchEvent(new Event('change')); }")
        page.wait_for_function("document.querySelector('#toon figcaption span').textContent.includes('0.30')",
                               timeout=30000)
        browser.close()
