"""Whether a style generator can render latents projected with the FFHQ generator (issue 26, item 1).

A style shares FFHQ's latent space only if it takes the same W+ (w size, number of ws, latent size and
mapping depth) and renders at the same resolution; layer swapping (blending) also needs the same channels.
"""
from __future__ import annotations

from typing import Optional

from .layout import GeneratorSpec

_COMPARED = ("resolution", "num_ws", "w_dim", "z_dim", "mapping_layers", "num_channels")


def style_mismatch(ffhq: GeneratorSpec, style: GeneratorSpec) -> Optional[str]:
    """None when ``style`` can render FFHQ's W+; else a message naming each difference."""
    problems = ["%s %r (FFHQ has %r)" % (name, getattr(style, name), getattr(ffhq, name))
                for name in _COMPARED if getattr(style, name) != getattr(ffhq, name)]
    if not problems:
        problems = ["%s has %d→%d channels (FFHQ has %d→%d)" % (mine.scope, mine.in_channels, mine.out_channels,
                                                                 theirs.in_channels, theirs.out_channels)
                    for mine, theirs in zip(style.layers, ffhq.layers)
                    if (mine.in_channels, mine.out_channels) != (theirs.in_channels, theirs.out_channels)]
    if not problems:
        return None
    return "the style does not share the FFHQ generator's latent space: " + "; ".join(problems)
