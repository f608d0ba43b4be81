"""The styles a server offers, as clients see them (``GET /styles``, ``/config``, the page's gallery, the
workers' presence in Redis): names, display names, licences, default strengths and a thumbnail rendered once
at setup (the average face in the style at full strength), plus the styles refused and why. A plain value: it
travels as JSON from a Redis worker to the API, which loads no models."""
from __future__ import annotations

import base64
from typing import Any, Callable, Dict, List, Mapping

import numpy as np
from PIL import Image

from stylegan2.styles import ALL_STYLES, DEFAULT_STYLE, LoadedStyles

from .encoding import encode_image
from .errors import InvalidOption
from .options import RenderOptions

THUMBNAIL_PX = 96
Synthesize = Callable[[np.ndarray, float, str], np.ndarray]


def thumbnail_url(rgb: np.ndarray) -> str:
    """A small PNG as a data: URL, so a listing carries its pictures and needs no signed links."""
    small = np.asarray(Image.fromarray(rgb).resize((THUMBNAIL_PX, THUMBNAIL_PX), Image.LANCZOS))
    return "data:image/png;base64," + base64.b64encode(encode_image(small, "png")).decode("ascii")


class StyleCatalog:
    """The served styles (default first) and the refused ones, from JSON-ready dicts."""

    def __init__(self, styles: List[Dict[str, Any]], refused: List[Dict[str, str]]) -> None:
        self.styles, self.refused = styles, refused

    @classmethod
    def rendered(cls, loaded: LoadedStyles, mean_face: np.ndarray, synthesize: Synthesize) -> "StyleCatalog":
        """Each style's entry with its thumbnail: ``mean_face`` (W+ [1, num_ws, 512]) rendered in the style at
        full strength, whatever its default: an in-between strength would build a second generator per style at
        every start (stylegan2.generator_pair). Rendering every style once also proves each one renders before
        the server is ready."""
        styles = [{"name": name, "display_name": settings.display_name, "licence": settings.licence,
                   "default_strength": settings.default_strength, "blended_at_load": settings.blend_resolution
                   is not None, "thumbnail": thumbnail_url(synthesize(mean_face, 1.0, name)[0])}
                  for name, settings in loaded.settings.items()]
        return cls(styles, [{"name": r.name, "reason": r.reason} for r in loaded.refused])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StyleCatalog":
        return cls(list(data.get("styles") or []), list(data.get("refused") or []))

    def to_json(self) -> Dict[str, Any]:
        return {"styles": self.styles, "refused": self.refused}

    @property
    def names(self) -> List[str]:
        return [style["name"] for style in self.styles]

    def default_strength(self, name: str) -> float:
        return next((float(s["default_strength"]) for s in self.styles if s["name"] == name), 1.0)

    def check(self, style: str, every_allowed: bool = True) -> List[str]:
        """The styles ``style`` asks for (all of them for 'all'); InvalidOption naming the known ones."""
        if style == ALL_STYLES and every_allowed:
            return self.names
        if style not in self.names:
            raise InvalidOption("style: unknown style %r; this server has %s%s" % (
                style, ", ".join(self.names), " and 'all'" if every_allowed else ""))
        return [style]


DEFAULT_CATALOG = StyleCatalog([{"name": DEFAULT_STYLE, "display_name": "Cartoon (Toonify)", "licence": "",
                                 "default_strength": 1.0, "blended_at_load": False, "thumbnail": None}], [])


def stored_style(options: RenderOptions) -> str:
    """The style a job's stored results were rendered in (jobs from before styles read as the default toon;
    style=all requests store it)."""
    return DEFAULT_STYLE if options.every_style else options.style
