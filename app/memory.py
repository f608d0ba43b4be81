"""The process's allocator policy, in one place: keep freed memory while working, give it back when big work ends.

1. ``keep_freed_memory()``, once at process entry (``app.cli.main`` for every ``python -m app`` command: the API
   server, the RQ worker, the CLI; ``bench/__init__`` for the benchmarks): glibc serves no block from its own
   mmap (``M_MMAP_MAX=0``), trims the heap only above 2 GiB and grows it 256 MiB at a time. A config-f
   projection step allocates and frees ~5 GB of 16–140 MB tensors; served from fresh mmap pages, faulting in and
   zeroing ~1.2 M pages costs ~1 s per step on a CPU (measured 1.2 M → 30 k faults per step,
   bench/RESULTS.md). Freed buffers are reused by the next step instead, as with a caching allocator.
2. ``return_freed_memory()`` where big, short-lived work ends: after each decode of an upload or re-paste, and
   after each job. glibc keeps freed heap memory in per-thread arenas; decodes of 49-MP photos in a pool of
   threads then leave gigabytes resident that no later decode reuses (measured: 2.6 GB peak for twelve serialised
   decodes that need 0.75 GB each; 0.87 GB with a trim after each). ``malloc_trim`` hands it back; the next job's
   first projection step faults its buffers in again, once per job.

Elsewhere than glibc both do nothing. Processes started otherwise (``python -m stylegan2``, your own scripts)
get the same policy from glibc's tunables: README, "Memory"."""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Optional

# glibc mallopt parameters (malloc.h) and the values of rule 1
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
HEAP_TOP_PAD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = (1 << 31) - 1  # mallopt takes a C int: 2 GiB, the largest it accepts
KEEP = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES), (M_TOP_PAD, HEAP_TOP_PAD_BYTES))


def _libc() -> Optional[Any]:
    """glibc, or None where the C library has no ``malloc_trim``/``mallopt`` (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc


_LIBC = _libc()


def keep_freed_memory() -> bool:
    """Rule 1, for the whole process; True once glibc took every parameter (False elsewhere)."""
    return _LIBC is not None and all(_LIBC.mallopt(param, value) == 1 for param, value in KEEP)


def return_freed_memory() -> None:
    """Rule 2: every arena's free memory back to the operating system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
