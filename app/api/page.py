"""The web page at ``/``: choose or drop a photo, pick a face, watch progress (SSE), cancel, compare the
toon, the pasted photo and the reconstruction, change the toon strength, download. One self-contained file
(``static/index.html``: HTML, CSS and a little JS, nothing from other hosts), read once at import."""
from __future__ import annotations

from pathlib import Path

PAGE = (Path(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")
