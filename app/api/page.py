"""The web page at ``/`` and what it loads from this server: choose, drop, paste or snap a photo (or try an
example), pick a face, watch progress (SSE), cancel, compare the toon with the photo, change the toon
strength, download; the job lives in the page URL and the caller's recent jobs are listed. One
self-contained file (``static/index.html``: HTML, CSS and a little JS, nothing from other hosts), read once at
import, plus its icon (drawn here) and the example photos in ``static/examples/`` (public domain, see its
README)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict

from PIL import Image, ImageDraw

STATIC = Path(__file__).parent / "static"
PAGE = (STATIC / "index.html").read_text(encoding="utf-8")
EXAMPLES: Dict[str, Path] = {path.name: path for path in sorted((STATIC / "examples").glob("*.jpg"))}
ICON_SIZES = (16, 32, 48)


def draw_icon(size: int = 256) -> Image.Image:
    """A cartoon face (round head, big eyes, a smile) on the header's colour: drawn large, scaled down by the
    ICO writer, so the small sizes are smooth."""
    icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(icon)
    unit = size / 16
    pen.rounded_rectangle((0, 0, size - 1, size - 1), radius=3 * unit, fill=(43, 45, 66, 255))
    pen.ellipse((2 * unit, 2 * unit, 14 * unit, 14 * unit), fill=(255, 214, 165, 255))
    for left in (4.5, 9):
        pen.ellipse((left * unit, 5 * unit, (left + 2.5) * unit, 8.5 * unit), fill=(255, 255, 255, 255))
        pen.ellipse(((left + 0.8) * unit, 6.2 * unit, (left + 2) * unit, 7.8 * unit), fill=(43, 45, 66, 255))
    pen.arc((5 * unit, 7 * unit, 11 * unit, 12 * unit), start=20, end=160, fill=(176, 0, 32, 255),
            width=max(1, round(unit)))
    return icon


def favicon_ico() -> bytes:
    """``/favicon.ico``: the icon as a real ICO file in the sizes browsers ask for."""
    out = io.BytesIO()
    draw_icon().save(out, "ICO", sizes=[(s, s) for s in ICON_SIZES])
    return out.getvalue()


FAVICON = favicon_ico()
