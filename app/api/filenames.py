"""The file names downloads are offered under (``Content-Disposition``), one scheme for every answer:
``toonify-<job>-<what>[-<style>-<strength>].<extension>``, where ``<job>`` is the job id's first 8 characters
(``fast`` for method=fast, which makes no job) and ``<what>`` says which result (``face0-toon``,
``face1-aligned``, ``paste``, ``faces-toon``, ``results``). ``curl -OJ`` and browsers save under it; images are
``inline`` (shown), ZIPs and latents ``attachment`` (saved).

Names hold ASCII letters, digits, ``.``, ``-`` and ``_`` only: nothing to quote or escape in the header, on any
file system, whatever a style is called."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
STYLED_KINDS = ("toon", "paste")  # results that depend on the style and strength


def look_parts(kind: str, style: str, strength: Optional[float]) -> List[str]:
    """What a name says of the look: the style and strength (two decimals, as the CLI names its renders) of a
    toon or paste; nothing for results that do not depend on them."""
    if kind not in STYLED_KINDS:
        return []
    return [style] if strength is None else [style, "%.2f" % strength]


def download_name(subject: str, parts: Sequence[str], ext: str) -> str:
    """``toonify-<subject>-<parts…>.<ext>``, with anything outside the safe characters replaced by ``_``."""
    return _UNSAFE.sub("_", "-".join(["toonify", subject] + list(parts)) + "." + ext)


def disposition(name: str, inline: bool) -> Dict[str, str]:
    """The header that offers the answer as ``name``: shown in place (inline) or saved (attachment)."""
    return {"Content-Disposition": '%s; filename="%s"' % ("inline" if inline else "attachment", name)}
