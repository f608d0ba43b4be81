"""Styles over real uvicorn (issue 26): one short projection, then the job rendered in three more styles — a TF
pickle used as it is, a TF fine-tune blended at load, an ADA snapshot — and in all of them at once, with zero
further projection steps (counted by toonify_projection_steps_total); a style of another resolution refused
at setup with its message; an unknown style a 422 naming the known ones."""
from __future__ import annotations

import io
import re
import zipfile

import httpx
import numpy as np
import pytest
from PIL import Image

from app.config import STYLES_ON_DEVICE, ConfigError, Settings
from tests.app.server import Server, wait_for
from tests.app.styled_models import STYLES, styled_models
from tests.conftest import PHOTOS, run_cli


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    """The service over a models folder with styles, holding one added style's generator at a time (issue 26.5):
    every test below also renders styles rebuilt from the host after another was dropped."""
    root = tmp_path_factory.mktemp("styles-service")
    started = Server(engine, styled_models(root, tiny_models), root / "data", root / "cache",
                     styles_on_device=1).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def client(server, request):
    """One client for the module's tests."""
    opened = server.client()
    request.addfinalizer(opened.close)
    return opened


@pytest.fixture(scope="module")
def job(server):
    """One short projection, finished."""
    with server.client() as client:
        photo = {"image": ("astronaut.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")}
        created = client.post("/toonify?async=1", files=photo, data={"steps": "3"})
        assert created.status_code == 202, created.text
        done = wait_for(client, created.json()["id"])
        assert done["status"] == "succeeded", done
        return done


def _rgb(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def _projection_steps(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return float(re.search(r"^toonify_projection_steps_total ([0-9.e+]+)$", text, re.M).group(1))


def test_styles_are_listed_with_thumbnails_and_the_other_resolution_refused(client):
    listing = client.get("/styles").json()
    assert [style["name"] for style in listing["styles"]] == STYLES
    blended = next(style for style in listing["styles"] if style["name"] == "blended")
    assert (blended["display_name"], blended["licence"], blended["default_strength"]) == ("Blended at load",
                                                                                          "CC0-1.0", 0.8)
    assert blended["blended_at_load"] is True
    for style in listing["styles"]:
        thumbnail = Image.open(io.BytesIO(__import__("base64").b64decode(style["thumbnail"].split(",", 1)[1])))
        assert style["thumbnail"].startswith("data:image/png;base64,") and thumbnail.size == (96, 96)
    assert listing["refused"] == [{"name": "small", "reason": "the style does not share the FFHQ generator's latent "
                                   "space: resolution 32 (FFHQ has 64); num_ws 8 (FFHQ has 10)"}]
    assert client.get("/config").json()["styles"] == STYLES


def test_one_projection_renders_in_every_style_without_projecting_again(client, job):
    steps = _projection_steps(client)
    assert steps >= 3
    assert job["styles"] == STYLES
    base = "/jobs/%s" % job["id"]
    toons = {name: _rgb(client.get(base + "/result", params={"style": name, "strength": "1"})) for name in STYLES}
    assert np.array_equal(toons["cartoon"], _rgb(client.get(base + "/result")))  # the job's own style
    for a in STYLES:
        for b in STYLES:
            if a < b and {a, b} != {"ada", "cartoon"}:
                assert not np.array_equal(toons[a], toons[b]), (a, b)
    # the ADA snapshot holds tiny-ffhq's weights: at full strength it renders the FFHQ reconstruction
    assert np.array_equal(toons["ada"], _rgb(client.get(base + "/result", params={"kind": "reconstruction"})))
    half = _rgb(client.post(base + "/render", params={"style": "plain", "strength": "0.5"}))
    assert not np.array_equal(half, toons["plain"])
    # a style's default strength, where the request names none
    assert np.array_equal(_rgb(client.get(base + "/result", params={"style": "blended"})),
                          _rgb(client.post(base + "/render", params={"style": "blended", "strength": "0.8"})))
    pasted = _rgb(client.get(base + "/result", params={"kind": "paste", "style": "ada"}))
    own_paste = _rgb(client.get(base + "/result", params={"kind": "paste"}))
    assert pasted.shape == own_paste.shape and not np.array_equal(pasted, own_paste)
    # the same photo again in another style: the projection is reused
    photo = {"image": ("astronaut.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")}
    again = client.post("/toonify", files=photo, data={"steps": "3", "style": "plain", "strength": "1"})
    assert np.array_equal(_rgb(again), toons["plain"])
    assert again.headers["x-toonify-job"] == job["id"]
    assert _projection_steps(client) == steps


def _zip_names(response: httpx.Response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return sorted(archive.namelist()), {name: archive.read(name) for name in archive.namelist()}


def test_style_all_is_a_zip_of_every_style(client, job):
    steps = _projection_steps(client)
    base = "/jobs/%s" % job["id"]
    names, files = _zip_names(client.get(base + "/result", params={"style": "all", "strength": "1"}))
    assert names == sorted("%s_toon_00.png" % name for name in STYLES)
    plain = np.asarray(Image.open(io.BytesIO(files["plain_toon_00.png"])).convert("RGB"))
    assert np.array_equal(plain, _rgb(client.get(base + "/result", params={"style": "plain", "strength": "1"})))
    names, _ = _zip_names(client.post(base + "/render", params={"style": "all", "strength": "0.5", "format": "jpeg"}))
    assert names == sorted("%s_toon_00.jpg" % name for name in STYLES)
    photo = {"image": ("astronaut.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")}
    names, _ = _zip_names(client.post("/toonify", files=photo, data={"steps": "3", "style": "all",
                                                                      "output": "paste"}))
    assert names == sorted("%s_paste.png" % name for name in STYLES)
    assert _projection_steps(client) == steps


@pytest.mark.parametrize("style", ["nope", "small", "Bad Name!", "x" * 41])
def test_an_unknown_style_is_a_422_naming_the_known_ones(client, job, style):
    base = "/jobs/%s" % job["id"]
    photo = {"image": ("astronaut.png", (PHOTOS / "astronaut.png").read_bytes(), "image/png")}
    for response in (client.get(base + "/result", params={"style": style}),
                     client.post(base + "/render", params={"style": style, "strength": "1"}),
                     client.post("/toonify", files=photo, data={"steps": "3", "style": style})):
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "invalid_option" and "style" in body["message"]
        if style in ("nope", "small"):
            assert "cartoon, ada, blended, plain" in body["message"]


def test_style_all_refuses_outputs_that_do_not_depend_on_the_style(client, job):
    response = client.get("/jobs/%s/result" % job["id"], params={"style": "all", "kind": "aligned"})
    assert response.status_code == 422 and "style=all" in response.json()["message"]


def test_cli_renders_saved_latents_in_a_style_or_all_of_them(server, tmp_path):
    """``python -m app render LATENTS --style NAME|all``: one image per style, named by the no-overwrite rules."""
    models = ["--models", server.env["TOONIFY_MODELS_DIR"], "--engine", server.env["TOONIFY_ENGINE"]]
    latents = tmp_path / "face0-latents.npy"
    np.save(str(latents), np.random.RandomState(0).randn(10, 512).astype(np.float32) * 0.5)
    out = tmp_path / "out"
    unknown = run_cli(["app", "render", str(latents), "--style", "nope", "--out", str(out)] + models)
    assert unknown.returncode == 2 and "cartoon, ada, blended, plain, small (and 'all')" in unknown.stderr
    every = run_cli(["app", "render", str(latents), "--style", "all", "--out", str(out)] + models)
    assert every.returncode == 0, every.stderr
    assert "style small refused: the style does not share" in every.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ada_toon_00-strength1.00.png", "blended_toon_00-strength0.80.png",
                                                     "plain_toon_00-strength1.00.png", "toon_00-strength1.00.png"]
    again = run_cli(["app", "render", str(latents), "--style", "plain", "--out", str(out)] + models)
    assert again.returncode != 0 and "plain_toon_00-strength1.00.png" in again.stderr
    refused = run_cli(["app", "render", str(latents), "--style", "small", "--out", str(out)] + models)
    assert refused.returncode == 1 and "refused" in refused.stderr


def test_styles_on_device_is_read_from_the_environment_and_never_negative(monkeypatch):
    monkeypatch.delenv("TOONIFY_STYLES_ON_DEVICE", raising=False)
    assert Settings().styles_on_device == STYLES_ON_DEVICE
    monkeypatch.setenv("TOONIFY_STYLES_ON_DEVICE", "0")
    assert Settings().styles_on_device == 0  # every style held
    monkeypatch.setenv("TOONIFY_STYLES_ON_DEVICE", "-1")
    with pytest.raises(ConfigError) as raised:
        Settings()
    assert "TOONIFY_STYLES_ON_DEVICE must not be negative" in str(raised.value)


@pytest.mark.parametrize("bound", [0, 1])
def test_a_start_builds_each_generator_once_and_no_in_between_one(engine, tiny_models, tmp_path, monkeypatch, bound):
    """Setup renders every style's thumbnail: at full strength, so a style whose default strength is in between
    ("blended", 0.8) builds no second generator at start-up, and past TOONIFY_STYLES_ON_DEVICE no style is built
    twice. Every generator the engine builds is counted by a subclass that records its spec, then builds it."""
    from app.toonify import Toonify
    from stylegan2.engines import backend

    networks, built = backend(engine), []

    class Counted(networks.Generator):  # type: ignore[name-defined,misc]
        def __init__(self, spec, device=None) -> None:
            built.append(spec)
            super().__init__(spec, device)

    monkeypatch.setattr(networks, "Generator", Counted)
    models = styled_models(tmp_path, tiny_models)
    toonify = Toonify(Settings(engine=engine, models_dir=models, cache_dir=tmp_path / "cache",
                               styles_on_device=bound)).setup()
    assert [style["name"] for style in toonify.styles.styles] == STYLES  # every thumbnail rendered
    expected = [toonify.models.ffhq_spec] + list(toonify.models.styles.specs.values())  # FFHQ, the toon, 3 styles
    assert len(built) == len(expected), [spec.resolution for spec in built]
    for spec in expected:
        assert sum(1 for done in built if done is spec) == 1
