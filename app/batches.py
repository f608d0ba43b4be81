"""How many faces one projection call may take: as many as the device's memory holds (stylegan2.memory's
estimate), at most MAX_BATCH, and — once a batch has run out of memory — half of that batch, for good."""
from __future__ import annotations

import logging
from typing import Callable, List, Optional, TypeVar

from stylegan2.memory import batch_that_fits

log = logging.getLogger("toonify.engine")
T = TypeVar("T")

CPU_DEVICE_BYTES = 8 << 30  # no GPU: plan batches as for the baseline card, an 8 GB RTX 2070
MAX_BATCH = 4


class BatchOutOfMemory(Exception):
    """A projection batch did not fit in device memory (the engine's own error, or the budget check)."""


class BatchPlan:
    def __init__(self, device_bytes: int, per_face_bytes: int, most: int = MAX_BATCH) -> None:
        self.device_bytes, self.per_face_bytes = device_bytes, per_face_bytes
        self.max_batch = batch_that_fits(device_bytes, per_face_bytes, most)
        self.oom_ceiling: Optional[int] = None  # the batch that last ran out of memory, halved

    def size(self, asked: int) -> int:
        """The batch to use when ``asked`` faces per batch were configured (0: as many as fit)."""
        size = asked if asked > 0 else self.max_batch
        return min(size, self.oom_ceiling) if self.oom_ceiling is not None else size

    def check(self, faces: int) -> None:
        """Refuse, before any allocation, a batch the budget says cannot fit."""
        if faces * self.per_face_bytes > self.device_bytes:
            raise BatchOutOfMemory("%d faces need ~%.1f GB; %.1f GB available"
                                   % (faces, faces * self.per_face_bytes / 1e9, self.device_bytes / 1e9))

    def halve(self, faces: int) -> int:
        """A batch of ``faces`` ran out of memory: the size to retry with, kept for later jobs."""
        self.oom_ceiling = faces // 2
        return self.oom_ceiling

    def run(self, count: int, asked: int, project: Callable[[int, int], T]) -> List[T]:
        """``project(first, size)`` over ``count`` faces in batches of ``size(asked)``, in order. A batch that
        raises BatchOutOfMemory is halved (for good) and retried; a single face that does not fit re-raises."""
        size, first, results = self.size(asked), 0, []  # type: int, int, List[T]
        while first < count:
            chunk = min(size, count - first)
            try:
                results.append(project(first, chunk))
            except BatchOutOfMemory as exc:
                if chunk == 1:
                    raise
                size = self.halve(chunk)
                log.warning("out of device memory at a batch of %d faces (%s); retrying %d at a time",
                            chunk, exc, size)
                continue
            first += chunk
        return results
