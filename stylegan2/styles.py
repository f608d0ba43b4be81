"""The styles a server renders (issue 26): the default toon plus every ``NAME.pkl`` of a styles folder, each with
an optional ``NAME.json`` of settings. Every style is checked against the FFHQ generator before it is used, since
only a generator sharing FFHQ's latent space can render latents projected with FFHQ; a fine-tune that is not
pre-blended is blended with FFHQ here, once, by the code ``python -m stylegan2 blend`` runs (spec §6).

NumPy only: the engines build generators from the specs this module returns."""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from . import pickles
from .blending import blend_gs
from .compatibility import style_mismatch
from .errors import ModelError
from .layout import GeneratorSpec, describe
from .pickles import NetworkRecord

DEFAULT_STYLE = "cartoon"  # the pre-blended ffhq-cartoon-blended-64.pkl beside the FFHQ model
ALL_STYLES = "all"  # a request's word for every style; never a style's name
STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
STYLE_NAME_RULE = "1-40 characters: lower-case letters, digits, '-' or '_', starting with a letter or digit"
MAX_TEXT = 200
SETTINGS_BYTES = 64 << 10
_SETTING_KEYS = ("display_name", "licence", "blend_resolution", "blend_width", "default_strength")


class StyleRefused(ModelError):
    """A style that cannot be served; the message names the style and why, for the server's log and /styles."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__("style %r refused: %s" % (name, reason))
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class StyleSettings:
    """What ``NAME.json`` may say; every key optional. ``blend_resolution`` set: the pickle is a fine-tune, blended
    with FFHQ at load (layers up to that resolution from the style, above from FFHQ); unset: used as it is."""

    display_name: str
    licence: str = ""
    blend_resolution: Optional[int] = None
    blend_width: Optional[float] = None  # None: a hard switch (spec §6); else the logistic's width
    default_strength: float = 1.0

    @classmethod
    def defaults(cls, name: str) -> "StyleSettings":
        return cls(display_name=name.replace("-", " ").replace("_", " ").capitalize())

    def to_json(self) -> Dict[str, Any]:
        return {key: getattr(self, key) for key in _SETTING_KEYS}


def _text(data: Mapping[str, Any], key: str, fallback: str) -> str:
    value = data.get(key, fallback)
    if not isinstance(value, str) or len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
        raise ValueError("%s must be one line of text, at most %d characters" % (key, MAX_TEXT))
    return value.strip() or fallback


def _number(data: Mapping[str, Any], key: str) -> Optional[float]:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("%s must be a number; got %r" % (key, value))
    return float(value)


def parse_settings(name: str, data: Any) -> StyleSettings:
    """A ``NAME.json``'s decoded content as settings; ValueError naming the first key that is wrong."""
    if not isinstance(data, dict):
        raise ValueError("the settings must be a JSON object with the keys %s" % ", ".join(_SETTING_KEYS))
    unknown = sorted(str(key) for key in data if key not in _SETTING_KEYS)
    if unknown:
        raise ValueError("unknown key(s) %s; the keys are %s" % (", ".join(unknown), ", ".join(_SETTING_KEYS)))
    defaults = StyleSettings.defaults(name)
    resolution, width = _number(data, "blend_resolution"), _number(data, "blend_width")
    strength = _number(data, "default_strength")
    if resolution is not None and (resolution != int(resolution) or resolution < 4
                                   or 2 ** int(round(math.log2(resolution))) != resolution):
        raise ValueError("blend_resolution must be a power of two from 4; got %r" % data["blend_resolution"])
    if width is not None and (resolution is None or width <= 0):
        raise ValueError("blend_width must be a number above 0, with a blend_resolution")
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise ValueError("default_strength must be within [0, 1]; got %r" % data["default_strength"])
    return StyleSettings(
        display_name=_text(data, "display_name", defaults.display_name), licence=_text(data, "licence", ""),
        blend_resolution=None if resolution is None else int(resolution), blend_width=width,
        default_strength=1.0 if strength is None else strength)


def read_settings(name: str, path: Path) -> StyleSettings:
    """``NAME.json`` beside the pickle, or the defaults when there is none; StyleRefused when it is unreadable
    or wrong."""
    if not path.is_file():
        return StyleSettings.defaults(name)
    try:
        if path.stat().st_size > SETTINGS_BYTES:
            raise ValueError("larger than %d bytes" % SETTINGS_BYTES)
        return parse_settings(name, json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # json's errors are ValueErrors
        raise StyleRefused(name, "%s: %s" % (path.name, exc)) from None


@dataclass(frozen=True)
class StyleSource:
    """A style found on disk, before it is loaded."""

    name: str
    path: Path
    settings: StyleSettings


def find_styles(folder: Optional[Path]) -> Tuple[List[StyleSource], List[StyleRefused]]:
    """The styles folder's pickles, by name, and the ones refused for their name or settings (no pickle is
    opened here)."""
    found: List[StyleSource] = []
    refused: List[StyleRefused] = []
    if folder is None or not Path(folder).is_dir():
        return found, refused
    for path in sorted(Path(folder).glob("*.pkl")):
        name = path.stem
        try:
            if not STYLE_NAME.fullmatch(name):
                raise StyleRefused(name, "its file name is not a style name (%s)" % STYLE_NAME_RULE)
            if name in (DEFAULT_STYLE, ALL_STYLES):
                raise StyleRefused(name, "%r is reserved (%s); rename the file" % (
                    name, "the default toon's name" if name == DEFAULT_STYLE else "it asks for every style"))
            found.append(StyleSource(name, path, read_settings(name, path.with_suffix(".json"))))
        except StyleRefused as refusal:
            refused.append(refusal)
    return found, refused


def style_generator(source: StyleSource, ffhq_gs: NetworkRecord, ffhq: GeneratorSpec) -> GeneratorSpec:
    """The style's generator, checked against FFHQ's and blended with it when its settings ask: StyleRefused with
    the difference or the file's problem. A TF pickle and an ADA snapshot both load (pickles.load_generator)."""
    try:
        style_gs = pickles.load_generator(source.path)
        mismatch = style_mismatch(ffhq, describe(style_gs))
        if mismatch:
            raise StyleRefused(source.name, mismatch)
        blend = source.settings.blend_resolution
        if blend is None:
            return describe(style_gs)
        if blend > ffhq.resolution:
            raise StyleRefused(source.name, "blend_resolution %d is above the models' resolution %d"
                               % (blend, ffhq.resolution))
        return describe(blend_gs(style_gs, ffhq_gs, blend, 0, source.settings.blend_width))
    except StyleRefused:
        raise
    except ModelError as exc:
        raise StyleRefused(source.name, str(exc).replace(str(source.path.parent) + os.sep, "")) from None


@dataclass
class LoadedStyles:
    """The styles that passed, in the order they are listed (default first), and the refused ones."""

    specs: "Dict[str, GeneratorSpec]"
    settings: "Dict[str, StyleSettings]"
    refused: List[StyleRefused]

    @property
    def names(self) -> List[str]:
        return list(self.specs)


def load_styles(folder: Optional[Path], ffhq_gs: NetworkRecord, default: GeneratorSpec) -> LoadedStyles:
    """The default toon (``default``, already loaded) and every style of ``folder`` that FFHQ's latents can
    render; one bad style never stops the others."""
    ffhq = describe(ffhq_gs)
    loaded = LoadedStyles({DEFAULT_STYLE: default},
                          {DEFAULT_STYLE: StyleSettings("Cartoon (Toonify)", "see models/README.md")}, [])
    sources, loaded.refused = find_styles(folder)
    for source in sources:
        try:
            loaded.specs[source.name] = style_generator(source, ffhq_gs, ffhq)
            loaded.settings[source.name] = source.settings
        except StyleRefused as refusal:
            loaded.refused.append(refusal)
    return loaded
