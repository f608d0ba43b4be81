"""Small random models in the official format, under the official file names, so the whole product runs
end to end where the real weights cannot be downloaded. Also used for benchmarks at config-f size."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from . import pickles
from .blending import blend_generators
from .constants import LRELU_GAIN, LRELU_SLOPE, PIXEL_NORM_EPS
from .layout import DEFAULTS, expected_mapping_shapes, expected_synthesis_shapes, synthesis_layers
from .model_files import FFHQ_FILE, MARKER_FILE, PERCEPTUAL_FILE, TOON_FILE
from .pickles import NetworkRecord

TINY_SETTINGS = {"resolution": 64, "fmap_base": 512, "fmap_max": 32}
TINY_BLEND_RESOLUTION = 16
CONFIG_F_SETTINGS = {"resolution": 1024, "fmap_base": 16 << 10, "fmap_max": 512}
TORGB_SCALE = 0.3  # keeps random outputs mostly within [-1, 1], as a trained model's are
SOURCE_NOTE = "# written by toonify's stylegan2.tiny: carries no code; networks are built from the variables\n"


def _random_value(name: str, shape: Tuple[int, ...], rnd: np.random.RandomState, lrmul: float = 1.0) -> np.ndarray:
    """Training's initialisation: N(0, 1/lrmul²) weights (runtime std 1/√fan_in); small random biases so
    bias and noise bugs show; tamer ToRGB weights so images are not mostly saturated."""
    scale = 0.1 if name.endswith(("bias", "noise_strength")) else 1.0 / lrmul
    if name.endswith("ToRGB/weight"):
        scale = TORGB_SCALE
    return np.asarray(rnd.standard_normal(shape) * scale, dtype=np.float32)


def _numpy_mapping_mean(mapping: "OrderedDict[str, np.ndarray]", layers: int, rnd: np.random.RandomState) -> np.ndarray:
    """Mean of w over random z, so truncation in test models behaves like in real ones (spec §3.3)."""
    x = rnd.randn(1000, 512).astype(np.float32)
    x = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + PIXEL_NORM_EPS)
    for i in range(layers):
        weight, bias = mapping["Dense%d/weight" % i], mapping["Dense%d/bias" % i]
        y = x @ (weight * (0.01 / np.sqrt(weight.shape[0]))) + bias * 0.01
        x = np.where(y >= 0, y, LRELU_SLOPE * y) * LRELU_GAIN
    return x.mean(axis=0).astype(np.float32)


def random_generator(seed: int, settings: Optional[Dict[str, int]] = None) -> Tuple[NetworkRecord, ...]:
    """A (G, D, Gs) tuple of random weights with the official names, shapes and nesting."""
    settings = dict(TINY_SETTINGS if settings is None else settings)
    rnd = np.random.RandomState(seed)
    kw = dict(DEFAULTS, **settings)
    static = dict(num_channels=3, resolution=kw["resolution"], label_size=0, fmap_base=kw["fmap_base"],
                  fmap_max=kw["fmap_max"], architecture="skip")
    layers = synthesis_layers(kw["resolution"], kw)
    synthesis_vars = OrderedDict(
        (name, _random_value(name, shape, rnd)) for name, shape in expected_synthesis_shapes(layers, 512).items()
    )
    mapping_vars = OrderedDict(
        (name, _random_value(name, shape, rnd, kw["mapping_lrmul"]))
        for name, shape in expected_mapping_shapes(kw).items()
    )
    num_ws = max(layer.w_index for layer in layers) + 1
    synthesis = NetworkRecord("G_synthesis", dict(static), synthesis_vars, build_func_name="G_synthesis_stylegan2",
                              build_module_src=SOURCE_NOTE)
    mapping = NetworkRecord("G_mapping", dict(static, dlatent_broadcast=num_ws), mapping_vars,
                            build_func_name="G_mapping", build_module_src=SOURCE_NOTE)
    own = OrderedDict([("lod", np.zeros([], np.float32)),
                       ("dlatent_avg", _numpy_mapping_mean(mapping_vars, kw["mapping_layers"], rnd))])
    gs = NetworkRecord("Gs", dict(static), own, OrderedDict([("synthesis", synthesis), ("mapping", mapping)]),
                       build_func_name="G_main", build_module_src=SOURCE_NOTE)
    d_vars = OrderedDict([("Output/weight", rnd.randn(kw["fmap_max"], 1).astype(np.float32)),
                          ("Output/bias", np.zeros([1], np.float32))])
    d = NetworkRecord("D", dict(static), d_vars, build_func_name="D_stylegan2", build_module_src=SOURCE_NOTE)
    g = NetworkRecord("G", gs.static_kwargs, gs.variables, gs.components, "G_main", SOURCE_NOTE)
    return (g, d, gs)


def write_tiny_models(out_dir: Path, seed: int = 0) -> Dict[str, Path]:
    """FFHQ stand-in, a cartoon stand-in blended like Toonify's (low-res from the cartoon model), a
    perceptual net, and a marker saying these are test models."""
    from .perceptual import random_perceptual  # imported here: only make-tiny needs it

    out_dir.mkdir(parents=True, exist_ok=True)
    ffhq = random_generator(seed)
    cartoon = random_generator(seed + 1)
    toon = blend_generators(cartoon, ffhq, TINY_BLEND_RESOLUTION)
    paths = {"ffhq": out_dir / FFHQ_FILE, "toon": out_dir / TOON_FILE, "perceptual": out_dir / PERCEPTUAL_FILE}
    pickles.save(ffhq, paths["ffhq"])
    pickles.save(toon, paths["toon"])
    pickles.save(random_perceptual(seed + 2), paths["perceptual"])
    (out_dir / MARKER_FILE).write_text(
        "These are tiny random TEST models written by `python -m stylegan2 make-tiny` (seed %d).\n"
        "They make the pipeline run end to end but produce noise, not faces. Run preload.sh for the real weights.\n"
        % seed
    )
    return paths
