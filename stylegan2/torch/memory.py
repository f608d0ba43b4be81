"""Device memory for the product: how much is free, and whether an error means it ran out."""
from __future__ import annotations

from typing import Optional

import torch


def free_device_bytes() -> Optional[int]:
    """Free memory of the CUDA device; None on CPU."""
    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return int(free)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or the CPU allocator's refusal."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
