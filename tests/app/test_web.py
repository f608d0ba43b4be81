"""The web page in a real headless Chromium (Debian's), driven by Playwright, against tiny models: banner,
server defaults, keyboard, face choice, progress, cancel, re-pick, the slider re-rendering toon and paste,
the phone layout, and the API docs with the network blocked. Screenshots of each state are kept as test
artifacts (``TOONIFY_TEST_ARTIFACTS``)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.app.server import Server
from tests.app.styled_models import STYLES, styled_models
from tests.conftest import PHOTOS, REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TOONIFY_TEST_ARTIFACTS", str(REPO / "bench" / "results" / "artifacts")))
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright lives in the torch venv (py3.8+)")
LOADED = "(s) => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    srv = Server(engine, tiny_models, root / "data", root / "cache").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is installed by the README's test command"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.goto(server.url + "/")
    tab.wait_for_function("document.getElementById('steps').value !== ''")
    yield tab
    context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / ("web-%s.png" % name)), full_page=True)


def _wait_done(page, timeout_ms: int = 600000) -> None:
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=timeout_ms)
    for selector in ("#toon img", "#paste img", "#reconstruction img"):
        page.wait_for_function(LOADED, arg=selector, timeout=30000)


def _toonified(page, url: str, steps: str, ready: str = "true"):
    """A fresh tab on the page at ``url`` (once ``ready`` holds), the astronaut toonified in ``steps`` steps."""
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('steps').value !== '' && (%s)" % ready)
    page.fill("#steps", steps)
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
    _wait_done(page)
    return page


def test_banner_server_defaults_wording_and_keyboard(page):
    assert page.is_visible("#banner") and "TEST models" in page.inner_text("#banner")
    assert page.input_value("#steps") == "20"  # the server's default (TOONIFY_DEFAULT_STEPS), not 500
    assert "Choose or drop a photo" in page.inner_text("#drop")
    _shot(page, "start")
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))  # Playwright intercepts pickers from now on…
    page.evaluate("1")  # …once this round trip has passed: the first key must not race it
    for count, key in enumerate(("Enter", " "), start=1):
        page.focus("#drop")
        page.keyboard.press(key)
        for _ in range(100):
            if len(choosers) == count:
                break
            page.wait_for_timeout(50)
        assert len(choosers) == count, "%r on the drop zone opened no file picker" % key


def test_progress_result_reconstruction_and_downloads(page):
    page.fill("#steps", "30")
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
    page.wait_for_function("document.getElementById('bar').value > 0 && document.getElementById('bar').value < 1",
                           timeout=60000)
    _shot(page, "progress")
    _wait_done(page)
    assert page.eval_on_selector("#toon img", "img => img.naturalWidth") == 64
    assert page.eval_on_selector("#paste img", "img => img.naturalWidth") == 512
    assert page.eval_on_selector("#reconstruction img", "img => img.naturalWidth") == 64
    assert page.get_attribute("#toon a", "download") == "astronaut-face0-toon-1.00.png"
    assert page.get_attribute("#paste a", "download") == "astronaut-pasted-1.00.png"
    _shot(page, "done")


def test_slider_shows_value_while_dragging_and_rerenders_toon_and_paste(page):
    page.fill("#steps", "5")
    page.set_input_files("#file", str(PHOTOS / "obama.jpg"))
    _wait_done(page)
    before = page.evaluate("async () => (await (await fetch(document.querySelector('#paste img').src))"
                           ".arrayBuffer()).byteLength")
    page.eval_on_selector("#strength", "s => { s.value = 0.3; s.dispatchEvent(new Event('input')); }")
    assert page.inner_text("#strengthValue") == "0.30"  # while dragging, before release
    assert "strength=1.00" in page.get_attribute("#paste img", "src")
    page.eval_on_selector("#strength", "s => s.dispatchEvent(new Event('change'))")
    for selector in ("#toon img", "#paste img"):
        assert "strength=0.30" in page.get_attribute(selector, "src")
        page.wait_for_function(LOADED, arg=selector, timeout=30000)
    after = page.evaluate("async () => (await (await fetch(document.querySelector('#paste img').src))"
                          ".arrayBuffer()).byteLength")
    assert after != before  # the pasted photo itself was re-rendered
    assert page.get_attribute("#paste a", "download") == "obama-pasted-0.30.png"
    _shot(page, "strength-030")
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))  # the next job starts at its own strength
    assert page.input_value("#strength") == "1" and page.inner_text("#strengthValue") == "1.00"


def test_picking_the_same_file_again_starts_again(page):
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/faces") else None)
    page.fill("#steps", "5")
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
    _wait_done(page)
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
    assert page.is_hidden("#output")  # the old result is gone at once
    _wait_done(page)
    assert len(posts) == 2


def test_cancel_stops_the_job_and_clears_the_screen(page, server):
    page.fill("#steps", "2000")
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
    page.wait_for_function("document.getElementById('bar').value > 0", timeout=60000)
    job_id = page.evaluate("state.job.id")
    page.click("#cancel")
    page.wait_for_function("document.getElementById('status').textContent === 'Cancelled.'")
    assert page.eval_on_selector("#bar", "b => b.value") == 0 and page.is_hidden("#cancel")
    assert page.query_selector_all("#results img") == [] and page.is_hidden("#output")
    page.wait_for_timeout(500)
    assert httpx.get(server.url + "/jobs/%s" % job_id).json()["status"] == "cancelled"
    _shot(page, "cancelled")


def test_two_face_photo_offers_each_face_and_all(page, server):
    page.fill("#steps", "5")
    page.set_input_files("#file", str(PHOTOS / "two-faces.jpg"))
    page.wait_for_selector("#faceChoice:not([hidden])")
    assert page.query_selector_all("#faces canvas").__len__() == 2 and "2 faces" in page.inner_text("#faceHint")
    _shot(page, "face-choice")
    page.click("button[aria-label='toonify face 1']")
    _wait_done(page)
    job = httpx.get(server.url + "/jobs/%s" % page.evaluate("state.job.id")).json()
    assert job["options"]["face"] == "1" and len(job["faces"]) == 1
    page.click("#allFaces")
    _wait_done(page)
    assert len(page.query_selector_all("#resultFaces button")) == 2
    page.click("#resultFaces button[data-face='1']")
    page.wait_for_function("document.querySelector('#toon img').src.includes('face=1')")
    page.wait_for_function(LOADED, arg="#toon img")
    assert page.get_attribute("#toon a", "download") == "two-faces-face1-toon-1.00.png"
    _shot(page, "all-faces")


def test_phone_width_puts_result_and_slider_first(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = _toonified(context.new_page(), server.url, "5")
    toon, slider, drop = (page.query_selector(s).bounding_box() for s in ("#toon img", "#strength", "#drop"))
    assert slider["y"] + slider["height"] <= 844 and slider["y"] < drop["y"] and toon["y"] < drop["y"]
    assert toon["x"] >= 0 and toon["x"] + toon["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.screenshot(path=str(ARTIFACTS / "web-phone-390.png"))
    context.close()


@pytest.mark.parametrize("path, rendered", [("/docs", ".opblock-summary-path[data-path='/toonify']"),
                                            ("/redoc", "text=Toonify a photo")])
def test_api_docs_render_with_the_network_blocked(browser, server, path, rendered):
    context = browser.new_context()
    elsewhere = []

    def only_this_server(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.goto(server.url + path)
    page.wait_for_selector(rendered, timeout=60000)
    if path == "/docs":  # open POST /toonify: the form is typed from the options model
        page.click(rendered)
        page.wait_for_selector("text=webhook_events_filter", timeout=30000)
        assert page.is_visible("text=reconstruction")
    page.screenshot(path=str(ARTIFACTS / ("docs%s-offline.png" % path.replace("/", "-"))), full_page=True)
    context.close()
    assert [url for url in elsewhere if not url.endswith("logo-mini.svg")] == [], elsewhere


def test_models_that_failed_to_load_are_told_in_the_banner_before_any_upload(browser, engine, tiny_models,
                                                                              tmp_path):
    models = tmp_path / "models"
    shutil.copytree(str(tiny_models), str(models))
    ffhq = models / "stylegan2-ffhq-config-f.pkl"
    ffhq.write_bytes(ffhq.read_bytes()[: ffhq.stat().st_size // 2])
    broken = Server(engine, models, tmp_path / "data", tmp_path / "cache").spawn().wait_until("/healthz")
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        tab = context.new_page()
        tab.goto(broken.url + "/")  # the page may come while the models still load: it asks again until they fail
        tab.wait_for_function("document.getElementById('banner').textContent.includes('cannot toonify')",
                              timeout=120000)
        text = tab.inner_text("#banner")
        assert "stylegan2-ffhq-config-f.pkl is truncated" in text and "TOONIFY_MODELS_DIR" in text
        assert "TEST models" in text and tab.get_attribute("#banner", "class") == "problem"
        _shot(tab, "models-failed")
    finally:
        context.close()
        broken.stop()


def test_style_gallery_picks_a_style_and_moves_its_strength(browser, engine, tiny_models, tmp_path):
    """Issue 26: a finished job shows one button per style with this face in it; picking one re-renders the toon
    and the pasted photo in it at its default strength, and the slider then moves that style's strength."""
    styled = Server(engine, styled_models(tmp_path, tiny_models), tmp_path / "data", tmp_path / "cache").start()
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        tab = _toonified(context.new_page(), styled.url, "3", "state.styles.length > 0")
        buttons = tab.query_selector_all("#styles button")
        assert [b.get_attribute("data-style") for b in buttons] == STYLES and tab.is_visible("#styleGallery")
        assert tab.get_attribute("#styles button[data-style='cartoon']", "aria-pressed") == "true"
        for name in STYLES:
            tab.wait_for_function(LOADED, arg="#styles button[data-style='%s'] img" % name, timeout=30000)
        assert "Blended at load" in tab.inner_text("#styles button[data-style='blended']")
        assert "CC0-1.0" in tab.get_attribute("#styles button[data-style='blended']", "title")
        _shot(tab, "styles-gallery")
        tab.click("#styles button[data-style='blended']")
        assert tab.inner_text("#strengthValue") == "0.80"  # the style's default strength
        for selector in ("#toon img", "#paste img"):
            assert "style=blended" in tab.get_attribute(selector, "src")
            assert "strength=0.80" in tab.get_attribute(selector, "src")
            tab.wait_for_function(LOADED, arg=selector, timeout=30000)
        assert tab.get_attribute("#styles button[data-style='blended']", "aria-pressed") == "true"
        tab.eval_on_selector("#strength", "s => { s.value = 0.4; s.dispatchEvent(new Event('input')); "
                                          "s.dispatchEvent(new Event('change')); }")
        assert "strength=0.40" in tab.get_attribute("#toon img", "src")
        assert "style=blended" in tab.get_attribute("#toon img", "src")
        for selector in ("#toon img", "#paste img"):
            tab.wait_for_function(LOADED, arg=selector, timeout=30000)
        assert tab.get_attribute("#toon a", "download") == "astronaut-face0-toon-blended-0.40.png"
        _shot(tab, "styles-blended-040")
    finally:
        context.close()
        styled.stop()
