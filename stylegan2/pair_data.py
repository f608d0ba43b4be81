"""Training and held-out batches from a pairs folder (stylegan2.pairs), NumPy only.

The held-out set is the last ``holdout`` pairs by index: the same latents for every run on that folder, never
seen in training. Shards are kept in memory up to ``max_cached_bytes``; beyond that a window of shards is
cached and one of them is swapped for another every ``swap_every`` batches, so folders larger than RAM train.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .pairs import Manifest

Batch = Tuple[np.ndarray, np.ndarray, np.ndarray]  # faces uint8 NHWC, toons uint8 NHWC, strengths float32 [B]


class PairData:
    def __init__(self, folder: Path, holdout: int, max_cached_bytes: int = 4 << 30, swap_every: int = 50) -> None:
        self.folder = Path(folder)
        self.manifest = Manifest.read(self.folder)
        self.strengths = np.asarray(self.manifest.settings.strengths, np.float32)
        self.resolution = self.manifest.settings.resolution
        total = sum(shard["count"] for shard in self.manifest.shards)
        if holdout < 0 or total - holdout < 1:
            raise ValueError("%s has %d finished pairs: too few for %d held out" % (folder, total, holdout))
        self.holdout_start = max(shard["first"] + shard["count"] for shard in self.manifest.shards) - holdout
        self.train_shards = [s for s in self.manifest.shards if s["first"] < self.holdout_start]
        self.train_count = sum(min(s["count"], self.holdout_start - s["first"]) for s in self.train_shards)
        shard_bytes = self._shard_bytes()
        self.window = max(1, min(len(self.train_shards), int(max_cached_bytes // max(1, shard_bytes))))
        self.swap_every = swap_every
        self._cache: Dict[str, Dict[str, np.ndarray]] = {}
        self._batches = 0

    def _shard_bytes(self) -> int:
        side, strengths = self.resolution, len(self.strengths)
        return self.manifest.settings.shard_size * side * side * 3 * (1 + strengths)

    def _load(self, shard: dict) -> Dict[str, np.ndarray]:
        with np.load(str(self.folder / shard["file"]), allow_pickle=False) as data:
            keep = data["index"] < self.holdout_start
            return {"faces": data["faces"][keep], "toons": data["toons"][keep]}

    def _fill_cache(self, rnd: np.random.RandomState) -> None:
        if len(self._cache) == self.window and (self.window == len(self.train_shards)
                                                or self._batches % self.swap_every):
            return
        if len(self._cache) == self.window:
            del self._cache[sorted(self._cache)[rnd.randint(len(self._cache))]]
        missing = [s for s in self.train_shards if s["file"] not in self._cache]
        while len(self._cache) < self.window and missing:
            shard = missing.pop(rnd.randint(len(missing)))
            self._cache[shard["file"]] = self._load(shard)

    def batch(self, rnd: np.random.RandomState, size: int, flip: bool = False) -> Batch:
        """Random pairs from the cached training shards, one random strength each; with ``flip`` mirrored
        left-right at random (a mirrored aligned face is still aligned; the toon mirrors with it)."""
        self._fill_cache(rnd)
        self._batches += 1
        names = sorted(self._cache)
        faces, toons = [], []
        strength_index = rnd.randint(len(self.strengths), size=size)
        for k in range(size):
            shard = self._cache[names[rnd.randint(len(names))]]
            i = rnd.randint(len(shard["faces"]))
            face, toon = shard["faces"][i], shard["toons"][i, strength_index[k]]
            if flip and rnd.uniform() < 0.5:
                face, toon = face[:, ::-1], toon[:, ::-1]
            faces.append(face)
            toons.append(toon)
        return np.stack(faces), np.stack(toons), self.strengths[strength_index]

    def held_out(self) -> Dict[str, np.ndarray]:
        """faces [N, R, R, 3], toons [N, S, R, R, 3], ws [N, num_ws, 512] of the held-out pairs."""
        parts: Dict[str, List[np.ndarray]] = {"faces": [], "toons": [], "ws": []}
        for shard in self.manifest.shards:
            if shard["first"] + shard["count"] <= self.holdout_start:
                continue
            with np.load(str(self.folder / shard["file"]), allow_pickle=False) as data:
                keep = data["index"] >= self.holdout_start
                for key in parts:
                    parts[key].append(data[key][keep])
        return {key: np.concatenate(value) for key, value in parts.items()}
