"""Seeds, latents, truncation and image conversion, exactly as the original scripts do them (spec §3.3, §3.9, §3.10)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .layout import GeneratorSpec


def _seed_ranges(text: str) -> List[range]:
    """'0-7,12' → [range(0, 8), range(12, 13)]; ValueError when there are none."""
    ranges = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            ranges.append(range(int(lo), int(hi) + 1))
        else:
            ranges.append(range(int(part), int(part) + 1))
    if not sum(len(r) for r in ranges):
        raise ValueError("no seeds in %r" % text)
    return ranges


def seed_count(text: str) -> int:
    """How many seeds '0-7,12' names, without listing them (a range may be absurdly long)."""
    return sum(len(r) for r in _seed_ranges(text))


def parse_seeds(text: str) -> List[int]:
    """'0-7,12' → [0, …, 7, 12]."""
    return [seed for r in _seed_ranges(text) for seed in r]


def latents_from_seeds(
    spec: GeneratorSpec, seeds: Sequence[int], noise_from_seed: bool
) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
    """z per seed from ``RandomState(seed).randn(1, z_dim)``; with ``noise_from_seed`` every noise buffer is
    re-drawn from the same stream after z, in variable order (run_generator.py)."""
    zs, noises = [], []
    for seed in seeds:
        rnd = np.random.RandomState(seed)
        zs.append(rnd.randn(1, spec.z_dim))
        if noise_from_seed:
            noises.append([rnd.randn(1, 1, res, res)[0, 0] for res in spec.noise_resolutions])
    z = np.concatenate(zs).astype(np.float32)
    if not noise_from_seed:
        return z, None
    per_map = [np.stack([n[i] for n in noises]).astype(np.float32) for i in range(len(spec.noise_resolutions))]
    return z, per_map


def broadcast(w: np.ndarray, num_ws: int) -> np.ndarray:
    """[N, w_dim] → [N, num_ws, w_dim]; W+ input passes through."""
    w = np.asarray(w, np.float32)
    if w.ndim == 2:
        return np.repeat(w[:, None, :], num_ws, axis=1)
    if w.ndim == 3 and w.shape[1] == num_ws:
        return w
    raise ValueError("latents must be [N, %d] or [N, %d, %d]; got %s" % (w.shape[-1], num_ws, w.shape[-1], w.shape))


def truncate(ws: np.ndarray, avg: np.ndarray, psi: float, cutoff: Optional[int] = None) -> np.ndarray:
    """G_main's truncation: lerp(avg, w, ψ) = avg + (w − avg)·ψ on layers < cutoff; ψ = 1 leaves W+ as is."""
    if psi == 1:
        return ws
    layer_psi = np.ones([1, ws.shape[1], 1], np.float32)
    layer_psi[:, : (ws.shape[1] if cutoff is None else cutoff)] = np.float32(psi)
    avg = avg.astype(np.float32)
    return (avg + (ws - avg) * layer_psi).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """NCHW in [−1, 1] → NHWC uint8: x·127.5 + 128, saturate, truncate (convert_images_to_uint8)."""
    scaled = images.astype(np.float32) * np.float32(127.5) + np.float32(128)
    return np.clip(scaled, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
