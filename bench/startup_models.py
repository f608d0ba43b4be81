"""The model folder a cold start is timed on: the three files the service loads, under their official names.
config-f: random weights from our writer (the FFHQ stand-in is bench.common's, the toon is blended from a second
random generator at 64², as Toonify's is, and the perceptual net is a full-size VGG16); written once into
bench/results and kept (never committed). tiny: the test models."""
from __future__ import annotations

import os
from pathlib import Path

from bench.common import RESULTS_DIR, config_f_pickle
from stylegan2 import pickles
from stylegan2.blending import blend_generators
from stylegan2.model_files import FFHQ_FILE, PERCEPTUAL_FILE, TOON_FILE, ModelPaths
from stylegan2.perceptual import VGG16_CHANNELS, random_perceptual
from stylegan2.tiny import CONFIG_F_SETTINGS, random_generator, write_tiny_models

TOON_BLEND_RESOLUTION = 64  # ffhq-cartoon-blended-64.pkl


def startup_models(size: str) -> Path:
    """The folder of ``size`` (config-f or tiny) models, written on first use."""
    folder = RESULTS_DIR / ("startup-models-%s" % size)
    if ModelPaths.in_dir(folder).missing():
        folder.mkdir(parents=True, exist_ok=True)
        if size == "tiny":
            write_tiny_models(folder, 0)
        else:
            _write_config_f(folder)
    return folder


def _write_config_f(folder: Path) -> None:
    ffhq = config_f_pickle()
    if not (folder / FFHQ_FILE).exists():
        os.link(str(ffhq), str(folder / FFHQ_FILE))  # the same bytes, not a second 250 MB file
    if not (folder / TOON_FILE).exists():
        toon = blend_generators(random_generator(1, CONFIG_F_SETTINGS), pickles.load(ffhq), TOON_BLEND_RESOLUTION)
        pickles.save(toon, folder / TOON_FILE)
    if not (folder / PERCEPTUAL_FILE).exists():
        pickles.save(random_perceptual(0, VGG16_CHANNELS), folder / PERCEPTUAL_FILE)
