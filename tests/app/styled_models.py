"""A models folder with styles for the service tests (issue 26): the tiny FFHQ fixture and its toon, and in
``styles/`` a TF pickle used as it is, the same fine-tune blended at load, an ADA snapshot of FFHQ's own
weights, and a style of another resolution (refused at setup)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from stylegan2 import pickles
from stylegan2.model_files import FFHQ_FILE, PERCEPTUAL_FILE, STYLES_FOLDER, TOON_FILE
from stylegan2.tiny import random_generator
from tests.conftest import FIXTURES, STYLEGAN_FIXTURES

STYLES = ["cartoon", "ada", "blended", "plain"]  # as served: the default first, then by name


def styled_models(root: Path, perceptual_from: Path) -> Path:
    """The tiny FFHQ fixture and its toon, the perceptual net of make-tiny, and a styles folder."""
    models = root / "models"
    styles = models / STYLES_FOLDER
    styles.mkdir(parents=True)
    shutil.copy(str(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"), str(models / FFHQ_FILE))
    shutil.copy(str(STYLEGAN_FIXTURES / "tiny-toon.pkl"), str(models / TOON_FILE))
    shutil.copy(str(perceptual_from / PERCEPTUAL_FILE), str(models / PERCEPTUAL_FILE))
    shutil.copy(str(STYLEGAN_FIXTURES / "tiny-other.pkl"), str(styles / "plain.pkl"))
    shutil.copy(str(STYLEGAN_FIXTURES / "tiny-other.pkl"), str(styles / "blended.pkl"))
    (styles / "blended.json").write_text(json.dumps({"display_name": "Blended at load", "licence": "CC0-1.0",
                                                     "blend_resolution": 16, "default_strength": 0.8}))
    shutil.copy(str(FIXTURES / "stylegan2-ada" / "ada-from-tf.pkl"), str(styles / "ada.pkl"))
    pickles.save(random_generator(5, {"resolution": 32, "fmap_base": 1024, "fmap_max": 64}), styles / "small.pkl")
    return models
