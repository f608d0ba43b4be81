"""Training pairs for the fast-mode student: the FFHQ image and the toon of the *same* W+ (issue #18).

Latents come from seeds (z = RandomState(seed).randn(1, z_dim) as run_generator.py, then optional style mixing
drawn from the same stream, then truncation) and, optionally, from saved projections of real photos (.npy W+).
Output: ``shard-NNNNN.npz`` files (uint8 faces [N, R, R, 3], toons [N, S, R, R, 3] for S strengths, W+ float32)
and ``manifest.json``. A finished shard is never rendered again, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .generator_pair import GeneratorPair
from .layout import GeneratorSpec
from .sampling import broadcast, truncate

MANIFEST = "manifest.json"
SHARD_PATTERN = "shard-%05d.npz"


@dataclass(frozen=True)
class PairSettings:
    """Everything that decides the pixels of a pairs folder (a resumed run must use the same)."""

    resolution: int
    count: int  # latents from seeds
    first_seed: int = 0
    truncation_psi: float = 0.7
    mixing_prob: float = 0.0
    strengths: Tuple[float, ...] = (1.0,)
    shard_size: int = 64
    projections: Tuple[str, ...] = ()  # .npy files of W+ [num_ws, 512] or [N, num_ws, 512], after the seeds


@dataclass
class Manifest:
    settings: PairSettings
    ffhq: str
    toon: str
    total: int
    shards: List[Dict[str, int]] = field(default_factory=list)  # {"file", "first", "count"} once written

    def to_json(self) -> str:
        return json.dumps(dict(asdict(self), format="toonify-pairs/1"), indent=1)

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        data = json.loads((Path(folder) / MANIFEST).read_text())
        settings = data["settings"]
        settings["strengths"], settings["projections"] = tuple(settings["strengths"]), tuple(settings["projections"])
        return cls(PairSettings(**settings), data["ffhq"], data["toon"], data["total"], data["shards"])


def seed_latents(mapping: Callable[[np.ndarray], np.ndarray], spec: GeneratorSpec, seeds: Sequence[int],
                 psi: float, mixing_prob: float) -> np.ndarray:
    """W+ per seed: z from the seed's stream; with probability ``mixing_prob`` the layers from a random
    crossover on take a second z from the same stream (style mixing); then truncation towards w_avg."""
    z1, z2, crossover = [], [], []
    for seed in seeds:
        rnd = np.random.RandomState(seed)
        z1.append(rnd.randn(spec.z_dim))
        mix = rnd.uniform() < mixing_prob
        z2.append(rnd.randn(spec.z_dim))
        crossover.append(rnd.randint(1, spec.num_ws) if mix else spec.num_ws)
    ws = broadcast(mapping(np.asarray(z1, np.float32)), spec.num_ws)
    mixed = broadcast(mapping(np.asarray(z2, np.float32)), spec.num_ws)
    for index, cut in enumerate(crossover):
        ws[index, cut:] = mixed[index, cut:]
    return truncate(ws, spec.dlatent_avg, psi, spec.truncation_cutoff)


def projection_latents(paths: Sequence[str], num_ws: int) -> np.ndarray:
    """Saved projections (project CLI writes [num_ws, 512] per face) stacked as [N, num_ws, 512]."""
    arrays = []
    for path in paths:
        w = np.load(str(path), allow_pickle=False).astype(np.float32)
        arrays.append(broadcast(w[None] if w.ndim == 2 else w, num_ws))
    return np.concatenate(arrays) if arrays else np.zeros([0, num_ws, 512], np.float32)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 NHWC → size², Lanczos like the face aligner's last step; unchanged at the same size."""
    if images.shape[1] == size:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS)) for image in images])


def _check_settings(settings: PairSettings, model_resolution: int) -> None:
    if settings.resolution > model_resolution or model_resolution % settings.resolution:
        raise ValueError("--resolution must divide the models' resolution %d; got %d"
                         % (model_resolution, settings.resolution))
    if not all(0.0 <= s <= 1.0 for s in settings.strengths) or not settings.strengths:
        raise ValueError("strengths must lie within [0, 1]")
    if settings.shard_size < 1 or settings.count < 0:
        raise ValueError("count must be ≥ 0 and the shard size ≥ 1")


def open_manifest(out: Path, settings: PairSettings, ffhq: Path, toon: Path, total: int) -> Manifest:
    """The folder's manifest: new, or the existing one when its settings match (resume); else an error."""
    path = out / MANIFEST
    if path.exists():
        existing = Manifest.read(out)
        if existing.settings != settings:
            raise ValueError("%s holds pairs made with other settings (%s); use a new --out folder"
                             % (out, existing.settings))
        return existing
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(settings, str(ffhq), str(toon), total)
    _write_manifest(out, manifest)
    return manifest


def _write_manifest(out: Path, manifest: Manifest) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(manifest.to_json())
    tmp.replace(out / MANIFEST)


def render_pairs(renderer: GeneratorPair, out: Path, settings: PairSettings,
                 on_shard: Optional[Callable[[int, int, bool], None]] = None) -> Manifest:
    """Render every missing shard; ``on_shard(done, total, skipped)`` after each."""
    out = Path(out)
    ffhq, toon = renderer.ffhq_path, renderer.toon_path
    spec = renderer.ffhq_spec
    _check_settings(settings, spec.resolution)
    projected = projection_latents(settings.projections, spec.num_ws)
    total = settings.count + len(projected)
    manifest = open_manifest(out, settings, ffhq, toon, total)
    done = {shard["file"] for shard in manifest.shards if (out / shard["file"]).exists()}
    manifest.shards = [shard for shard in manifest.shards if shard["file"] in done]
    shard_count = math.ceil(total / settings.shard_size)
    for index, first in enumerate(range(0, total, settings.shard_size)):
        name = SHARD_PATTERN % index
        if name in done:
            if on_shard is not None:
                on_shard(index + 1, shard_count, True)
            continue
        indices = list(range(first, min(total, first + settings.shard_size)))
        ws = _shard_latents(renderer, spec, settings, projected, indices)
        faces = resize(renderer.render(ws, 0.0), settings.resolution)
        toons = np.stack([resize(renderer.render(ws, s), settings.resolution) for s in settings.strengths], axis=1)
        tmp = out / (name + ".tmp.npz")
        np.savez(str(tmp), faces=faces, toons=toons, ws=ws, strengths=np.asarray(settings.strengths, np.float32),
                 index=np.asarray(indices, np.int64))
        tmp.replace(out / name)
        manifest.shards.append({"file": name, "first": first, "count": len(indices)})
        _write_manifest(out, manifest)
        if on_shard is not None:
            on_shard(index + 1, shard_count, False)
    return manifest


def _shard_latents(renderer: GeneratorPair, spec: GeneratorSpec, settings: PairSettings, projected: np.ndarray,
                   indices: Sequence[int]) -> np.ndarray:
    """Indices below ``count`` are seeds first_seed + i; the rest index the saved projections."""
    seeds = [settings.first_seed + i for i in indices if i < settings.count]
    parts = []
    if seeds:
        parts.append(seed_latents(renderer.ffhq.map, spec, seeds, settings.truncation_psi, settings.mixing_prob))
    rest = [i - settings.count for i in indices if i >= settings.count]
    if rest:
        parts.append(projected[rest])
    return np.concatenate(parts).astype(np.float32)


def iter_shards(folder: Path) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """(file name, arrays) of every finished shard, in order."""
    manifest = Manifest.read(folder)
    for shard in sorted(manifest.shards, key=lambda s: s["first"]):
        with np.load(str(Path(folder) / shard["file"]), allow_pickle=False) as data:
            yield shard["file"], {name: data[name] for name in data.files}
