"""The page's live previews in a real headless Chromium (Playwright), against tiny models: while the job
projects, the toon and reconstruction previews appear, captioned with their step; when it succeeds the results
replace them (that a newer preview follows is tests/app/test_previews.py's). Screenshots of both states are kept
as test artifacts."""
from __future__ import annotations

import pytest

from tests.app.server import Server
from tests.app.test_web import (  # noqa: F401 (skips on tf1)
    ARTIFACTS,
    LOADED,
    _wait_done,
    browser,  # noqa: F401 (the Chromium fixture)
    playwright_api,
)
from tests.conftest import PHOTOS

PREVIEW_IMG = "#preview figure img"


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("web-previews")
    srv = Server(engine, tiny_models, root / "data", root / "cache", preview_every_s="0.1").start()
    yield srv
    srv.stop()


def test_previews_show_while_projecting_and_the_result_replaces_them(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        page.wait_for_function("document.getElementById('steps').value !== ''")
        page.fill("#steps", "150")
        page.set_input_files("#file", str(PHOTOS / "astronaut.png"))
        page.wait_for_function(LOADED, arg=PREVIEW_IMG, timeout=120000)
        captions = page.eval_on_selector_all("#preview figcaption", "cs => cs.map((c) => c.textContent)")
        assert [c.split(" preview")[0] for c in captions] == ["toon", "reconstruction"], captions
        assert all(" preview, step " in c and c.endswith("/150") for c in captions), captions
        sizes = page.eval_on_selector_all(PREVIEW_IMG, "imgs => imgs.map((i) => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[256, 256], [256, 256]]
        assert page.is_hidden("#output")  # the results are not there yet
        page.screenshot(path=str(ARTIFACTS / "web-preview.png"), full_page=True)
        _wait_done(page)
        assert page.query_selector("#preview") is None  # the result replaced the previews
        assert page.eval_on_selector("#toon img", "img => img.naturalWidth") == 64
        page.screenshot(path=str(ARTIFACTS / "web-preview-done.png"), full_page=True)
    finally:
        context.close()
