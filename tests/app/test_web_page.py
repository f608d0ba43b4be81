"""Issue 27 items 2 and 6, the page in a real headless Chromium (Playwright) against tiny models: the job in the
URL (reload, shared link), the history, expired signed links renewed unnoticed, webcam (Chromium's fake
camera), clipboard paste, example photos, the before/after slider, face tabs numbered from 0, fast mode
offered only with a student, download-all, the icon, the 390 px layout. Screenshots go with test_web.py's."""
from __future__ import annotations

import base64
import io
import shutil
import time
import zipfile
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from stylegan2.model_files import STUDENT_FILE
from stylegan2.student import init_student, save_student
from tests.app import test_web
from tests.app.server import Server
from tests.app.test_web import ARTIFACTS, CHROMIUM, LOADED, _shot, _toonified, _wait_done
from tests.conftest import PHOTOS

browser, page, server = test_web.browser, test_web.page, test_web.server  # test_web's fixtures, shared

KEY = "page-key-1"
LINK_TTL_S = 4
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _job_id(tab) -> str:
    return tab.evaluate("new URLSearchParams(location.search).get('job')")


def _expiry(link: str) -> int:
    return int(parse_qs(urlsplit(link).query)["exp"][0])


def test_reload_and_a_shared_link_restore_the_job_and_the_history_opens_it(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        tab = _toonified(context.new_page(), server.url, "3")
        job_id = tab.evaluate("state.job.id")
        assert _job_id(tab) == job_id  # the URL names the job
        tab.reload()
        _wait_done(tab)
        assert tab.evaluate("state.job.id") == job_id and tab.is_visible("#output")
        assert tab.get_attribute("#toon a", "download") == "job-%s-face0-toon-1.00.png" % job_id[:8]
        _shot(tab, "restored")
        shared = context.new_page()  # a link handed to someone else: a fresh tab opens the finished result
        shared.goto("%s/?job=%s" % (server.url, job_id))
        _wait_done(shared)
        item = "#historyList button[data-job='%s']" % job_id
        shared.wait_for_selector(item)
        assert shared.get_attribute(item, "aria-current") == "true"
        shared.wait_for_function(LOADED, arg=item + " img")
        shared.fill("#steps", "3")
        shared.set_input_files("#file", str(PHOTOS / "obama.jpg"))  # another photo, another job in the URL
        _wait_done(shared)
        newer = shared.evaluate("state.job.id")
        assert _job_id(shared) == newer != job_id
        shared.wait_for_function("(id) => document.querySelector('#historyList button').dataset.job === id", arg=newer)
        assert shared.get_attribute(item, "aria-current") == "false"  # newest first; the open one is marked
        shared.click(item)  # the history opens the earlier job again
        _wait_done(shared)
        assert _job_id(shared) == job_id and shared.evaluate("state.job.id") == job_id
        _shot(shared, "history")
        missing = context.new_page()
        missing.goto(server.url + "/?job=nosuchjob")
        missing.wait_for_function("document.getElementById('status').className === 'error'")
        assert "no job nosuchjob" in missing.inner_text("#status")
    finally:
        context.close()


@pytest.fixture(scope="module")
def keyed_server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("web-keyed")
    srv = Server(engine, tiny_models, root / "data", root / "cache", api_keys=KEY, link_ttl_s=LINK_TTL_S).start()
    yield srv
    srv.stop()


def _wait_past(links, margin_s: float = 1.5) -> None:
    """Until every one of ``links`` has expired (the server refuses a link once its exp is past)."""
    time.sleep(max(0.0, max(_expiry(link) for link in links) + margin_s - time.time()))


def test_expired_links_are_renewed_without_the_user_noticing(browser, keyed_server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    refused, views = [], []
    try:
        tab = context.new_page()
        tab.on("response", lambda r: refused.append(r.url) if r.status == 403 else None)
        tab.on("request", lambda r: views.append(r.url) if urlsplit(r.url).path.count("/") == 2 and
               urlsplit(r.url).path.startswith("/jobs/") else None)
        tab.goto(keyed_server.url + "/")
        tab.wait_for_function("document.getElementById('historyHint').textContent.includes('API key')")
        tab.fill("#key", KEY)
        tab.dispatch_event("#key", "change")
        _toonified(tab, keyed_server.url, "3")  # the key stays with the tab over the page load
        tab.reload()  # and over a reload: the job is restored with it
        _wait_done(tab)
        toon = tab.get_attribute("#toon img", "src")
        assert "sig=" in toon and KEY not in toon
        _wait_past([toon])
        assert httpx.get(keyed_server.url + toon).status_code == 403  # the link the page holds has expired
        # an image that fails on an expired link: the page renews the links from the job view and retries
        seen = len(views)
        tab.eval_on_selector("#toon img", "img => { img.src = img.getAttribute('src') + '&format=png'; }")
        tab.wait_for_function("(old) => document.querySelector('#toon img').getAttribute('src') !== old",
                              arg=toon + "&format=png", timeout=30000)
        tab.wait_for_function(LOADED, arg="#toon img", timeout=30000)
        assert len(views) > seen and refused  # a 403, then the job view, then the image
        assert _expiry(tab.get_attribute("#toon img", "src")) > _expiry(toon)
        assert tab.get_attribute("#status", "class") != "error" and tab.inner_text("#status").startswith("Done")
        # a link known to be expired is renewed before it is used: moving the slider sends no expired link
        _wait_past([tab.get_attribute("#toon img", "src"), tab.get_attribute("#paste img", "src")])
        before = len(refused)
        tab.eval_on_selector("#strength", "s => { s.value = 0.5; s.dispatchEvent(new Event('input')); "
                                          "s.dispatchEvent(new Event('change')); }")
        tab.wait_for_function("document.querySelector('#paste img').src.includes('strength=0.50')", timeout=30000)
        for selector in ("#toon img", "#paste img", "#reconstruction img"):
            tab.wait_for_function(LOADED, arg=selector, timeout=30000)
        assert len(refused) == before, refused[before:]
        assert tab.get_attribute("#status", "class") != "error"
        _shot(tab, "links-renewed")
    finally:
        context.close()


def test_a_stream_whose_link_expired_during_a_restart_is_reopened(browser, keyed_server):
    """The server restarts while a job runs; by the time the page's EventSource reconnects its signed link has
    expired (403, the stream ends for good): the page opens the job again from its view and follows it on."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        tab = context.new_page()
        tab.goto(keyed_server.url + "/")
        tab.fill("#key", KEY)
        tab.dispatch_event("#key", "change")
        tab.fill("#steps", "400")
        tab.set_input_files("#file", str(PHOTOS / "astronaut.png"))
        tab.wait_for_function("document.getElementById('bar').value > 0", timeout=120000)
        job_id, events = tab.evaluate("[state.job.id, state.job.links.events]")
        keyed_server.stop()  # graceful: the job goes back to the queue and goes on after the restart
        _wait_past([events])
        keyed_server.spawn().wait_until("/readyz")
        tab.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=600000)
        assert tab.evaluate("state.job.id") == job_id and _job_id(tab) == job_id
        assert tab.evaluate("state.reopenedAt") > 0  # it was reopened, not followed on the old link
        _wait_done(tab)
        assert tab.get_attribute("#toon a", "download") == "astronaut-face0-toon-1.00.png"  # still the photo's name
        _shot(tab, "stream-reopened")
    finally:
        context.close()


@pytest.fixture(scope="module")
def camera_browser(browser):
    """A second Chromium (from the same Playwright) with a fake camera, allowed without asking."""
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=BROWSER_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    yield chromium
    chromium.close()


def test_webcam_snapshot_goes_to_the_server(camera_browser, server):
    """Chromium's fake camera shows a test pattern, no face: the snapshot reaches the server, whose clear answer
    the page shows."""
    context = camera_browser.new_context(viewport={"width": 1100, "height": 900})
    uploads = []
    try:
        tab = context.new_page()
        tab.on("response", lambda r: uploads.append(r) if r.request.method == "POST" and r.url.endswith("/faces")
               else None)
        tab.goto(server.url + "/")
        tab.click("#webcam")
        tab.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=30000)
        assert tab.is_visible("#camera")
        _shot(tab, "webcam")
        tab.click("#snap")
        tab.wait_for_function("document.getElementById('status').className === 'error'", timeout=60000)
        assert "no face found" in tab.inner_text("#status")
        assert len(uploads) == 1 and uploads[0].status == 422 and uploads[0].json()["code"] == "no_face"
        assert uploads[0].request.headers["content-type"].startswith("multipart/form-data")
        assert tab.is_hidden("#camera") and tab.evaluate("document.getElementById('video').srcObject") is None
        _shot(tab, "webcam-no-face")
    finally:
        context.close()


def test_a_pasted_image_is_toonified(page):
    page.fill("#steps", "3")
    photo = base64.b64encode((PHOTOS / "astronaut.png").read_bytes()).decode()
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), data = new DataTransfer();
        data.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
        document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
    }""", photo)
    _wait_done(page)
    assert page.evaluate("state.file.name") == "pasted.png"
    assert page.get_attribute("#toon a", "download") == "pasted-face0-toon-1.00.png"
    _shot(page, "pasted")


def _stage(tab) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(tab.locator("#toon .stage").screenshot())).convert("RGB")).astype(int)


def test_an_example_photo_starts_a_job_and_the_compare_slider_uncovers_photo_or_toon(page):
    page.wait_for_function(LOADED, arg="#examples button[data-example='obama.jpg'] img")
    page.fill("#steps", "3")
    page.click("#examples button[data-example='obama.jpg']")
    _wait_done(page)
    assert page.evaluate("state.file.name") == "obama.jpg"
    page.wait_for_function(LOADED, arg="#toon img.before")
    assert page.get_attribute("#toon img.before", "src") == page.get_attribute("#aligned img", "src")
    slider = "#toon input.compare"
    assert page.input_value(slider) == "50"
    page.eval_on_selector(slider, "r => { r.value = 0; r.dispatchEvent(new Event('input')); }")
    assert "100%" in page.eval_on_selector("#toon img.before", "i => i.style.clipPath")  # the photo is all hidden
    toon = _stage(page)
    _shot(page, "compare-toon")
    page.eval_on_selector(slider, "r => { r.value = 100; r.dispatchEvent(new Event('input')); }")
    photo = _stage(page)
    assert "100%" not in page.eval_on_selector("#toon img.before", "i => i.style.clipPath")
    assert np.abs(toon - photo).mean() > 10  # the toon (noise of the tiny models) is all gone: the photo shows
    page.eval_on_selector(slider, "r => { r.value = 50; r.dispatchEvent(new Event('input')); }")
    half = _stage(page)
    width = half.shape[1]
    assert np.abs(half[:, : width // 2 - 4] - photo[:, : width // 2 - 4]).mean() < 2  # photo on the left …
    assert np.abs(half[:, width // 2 + 4:] - toon[:, width // 2 + 4:]).mean() < 2  # … toon on the right
    _shot(page, "compare-half")


def test_face_tabs_show_the_selected_face_numbered_from_0(page):
    page.fill("#steps", "3")
    page.set_input_files("#file", str(PHOTOS / "two-faces.jpg"))
    page.wait_for_selector("#faceChoice:not([hidden])")
    assert [b.inner_text().strip() for b in page.query_selector_all("#faces button[data-face]")] == ["Face 0", "Face 1"]
    page.click("#allFaces")
    _wait_done(page)
    tabs = page.query_selector_all("#resultFaces [role=tab]")
    assert [t.inner_text() for t in tabs] == ["Face 0", "Face 1"]
    assert [t.get_attribute("aria-selected") for t in tabs] == ["true", "false"]
    style = "(b) => getComputedStyle(b).borderTopColor + ' ' + getComputedStyle(b).backgroundColor"
    selected, other = (t.evaluate(style) for t in tabs)
    assert selected != other  # the selection is seen, not only announced
    tabs[1].click()
    page.wait_for_function("document.querySelector('#toon img').src.includes('face=1')")
    assert [t.get_attribute("aria-selected") for t in tabs] == ["false", "true"]
    assert tabs[1].evaluate(style) == selected
    assert page.get_attribute("#toon a", "download") == "two-faces-face1-toon-1.00.png"
    _shot(page, "face-tabs")
    page.keyboard.press("ArrowRight")  # the arrow keys move between tabs, round
    page.wait_for_function("document.querySelector('#toon img').src.includes('face=0')")
    assert [t.get_attribute("aria-selected") for t in tabs] == ["true", "false"]
    assert page.evaluate("document.activeElement.dataset.face") == "0"


def test_icon_is_served_and_linked(page, server):
    href = page.get_attribute("link[rel=icon]", "href")
    answer = page.evaluate("async (h) => { const r = await fetch(h); return [r.status, r.headers.get('content-type'),"
                           " (await r.arrayBuffer()).byteLength]; }", href)
    assert answer[0] == 200 and answer[1] == "image/vnd.microsoft.icon" and answer[2] > 100
    assert httpx.get(server.url + "/favicon.ico").status_code == 200


def test_phone_width_status_near_the_top_and_captions_inside_their_cards(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    try:
        tab = context.new_page()
        tab.goto(server.url + "/")
        status, drop = (tab.query_selector(s).bounding_box() for s in ("#status", "#drop"))
        assert status["y"] < drop["y"] and status["y"] + status["height"] < 844 / 3
        _toonified(tab, server.url, "3")
        status, toon = (tab.query_selector(s).bounding_box() for s in ("#status", "#toon"))
        assert status["y"] < toon["y"] and status["y"] + status["height"] < 844 / 3
        for card in tab.query_selector_all("#results figure"):
            box, caption, name = card.bounding_box(), card.query_selector("figcaption"), card.get_attribute("id")
            inner = caption.bounding_box()
            assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"] + 0.5, name
            assert caption.evaluate("c => c.scrollWidth <= c.clientWidth"), name
            for part in caption.query_selector_all("span, a"):
                edge = part.bounding_box()
                assert edge["x"] + edge["width"] <= box["x"] + box["width"] + 0.5, (name, part.inner_text())
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        tab.screenshot(path=str(ARTIFACTS / "web-phone-390-status.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="module")
def fast_server(engine, tiny_models, tmp_path_factory):
    """The tiny models plus an untrained student (it returns its input): enough for the page to offer it."""
    models = tmp_path_factory.mktemp("models-with-student")
    for item in tiny_models.iterdir():
        if item.is_file():
            shutil.copy(str(item), str(models / item.name))
    save_student(init_student(64, (4, 8)), models / STUDENT_FILE)
    root = tmp_path_factory.mktemp("web-fast")
    srv = Server(engine, models, root / "data", root / "cache").start()
    yield srv
    srv.stop()


def test_fast_mode_is_offered_only_with_a_student(browser, fast_server, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        plain = context.new_page()
        with plain.expect_response(lambda r: r.url.endswith("/readyz")) as ready:
            plain.goto(server.url + "/")
        assert ready.value.json()["fast"]["available"] is False
        plain.wait_for_timeout(300)  # the answer is read
        assert plain.evaluate("state.fast") is False and plain.is_hidden("#methodRow")
        tab = context.new_page()
        tab.goto(fast_server.url + "/")
        tab.wait_for_selector("#methodRow:not([hidden])")
        tab.select_option("#method", "fast")
        answers = []
        tab.on("response", lambda r: answers.append(r.headers.get("x-toonify-method"))
               if r.request.method == "POST" and r.url.endswith("/toonify") else None)
        tab.set_input_files("#file", str(PHOTOS / "astronaut.png"))
        tab.wait_for_function("document.getElementById('status').textContent.startsWith('Done (fast mode)')",
                              timeout=120000)
        for selector in ("#toon img", "#paste img"):
            tab.wait_for_function(LOADED, arg=selector, timeout=30000)
        assert tab.eval_on_selector("#toon img", "i => i.naturalWidth") == 64
        assert tab.eval_on_selector("#paste img", "i => i.naturalWidth") == 512
        assert answers == ["fast", "fast"]  # the toon and the pasted photo, each by the student
        assert _job_id(tab) is None and tab.is_hidden("#strengthRow")
        _shot(tab, "fast-mode")
    finally:
        context.close()


def test_download_all_gets_the_jobs_zip(page, server):
    """Needs h-results' GET /jobs/{id}/archive and links.archive in the job view (issue 27 item 4)."""
    page.fill("#steps", "3")
    page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
    _wait_done(page)
    view = httpx.get(server.url + "/jobs/%s" % page.evaluate("state.job.id")).json()
    assert "archive" in view["links"], "the job view has no links.archive (h-results adds it)"
    page.wait_for_selector("#downloadAll:not([hidden])")
    with page.expect_download() as download:
        page.click("#downloadAll")
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(str(path)) as archive:
        assert archive.namelist()
    _shot(page, "download-all")
