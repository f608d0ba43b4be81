"""Swagger UI's "Try it out" on ``POST /toonify`` in a real headless Chromium (Playwright) against tiny models: a
photo chosen, a small number of steps, every other field as the docs pre-fill it, Execute — and the answer is a
200 with the image (issue 27.3: the pre-filled webhook fields used to make it a 422). The screenshot is kept as a
test artifact (``TOONIFY_TEST_ARTIFACTS``)."""
from __future__ import annotations

import httpx
import pytest

from tests.app.server import Server
from tests.app.test_web import ARTIFACTS, browser  # noqa: F401 (the Chromium fixture)
from tests.conftest import PHOTOS

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright lives in the torch venv (py3.8+)")
OPERATION = "#operations-default-toonify_toonify_post"


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("web-docs")
    srv = Server(engine, tiny_models, root / "data", root / "cache").start()
    yield srv
    srv.stop()


def test_try_it_out_on_toonify_returns_an_image_with_the_defaults(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    sent = []
    page.on("request", lambda request: sent.append(request) if request.url.startswith(server.url + "/toonify")
            else None)
    try:
        page.goto(server.url + "/docs")
        page.click(OPERATION + " .opblock-summary", timeout=60000)
        page.click(OPERATION + " button.try-out__btn", timeout=30000)
        body = page.locator(OPERATION + " .opblock-section-request-body")
        assert body.locator("select").first.input_value() == "multipart/form-data"
        for field in ("webhook", "image_url"):  # nothing pre-filled that a default server refuses
            assert body.locator("tr[data-property-name='%s'] input" % field).first.input_value() == ""
        body.locator("tr[data-property-name='steps'] input").first.fill("3")
        body.locator("input[type=file]").first.set_input_files(str(PHOTOS / "obama.jpg"))
        page.click(OPERATION + " button.execute")
        status = page.locator(OPERATION + " .live-responses-table tr.response .response-col_status").first
        status.wait_for(timeout=120000)
        image = page.locator(OPERATION + " .live-responses-table img").first
        image.wait_for(timeout=30000)
        page.wait_for_function("(i) => i.complete && i.naturalWidth > 0", arg=image.element_handle(), timeout=30000)
        page.locator(OPERATION).screenshot(path=str(ARTIFACTS / "docs-try-it-out-toonify.png"))
        assert status.inner_text().strip() == "200", page.locator(OPERATION + " .live-responses-table").inner_text()
        assert len(sent) == 1 and "multipart/form-data" in sent[0].headers["content-type"]
        answer = sent[0].response()
        assert answer.headers["content-type"] == "image/png"
        job = httpx.get(server.url + "/jobs/" + answer.headers["x-toonify-job"]).json()
        assert job["status"] == "succeeded" and job["options"]["steps"] == 3  # the step count typed in the form
    finally:
        context.close()
