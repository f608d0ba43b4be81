"""Shared bench plumbing: config-f random models written by our own writer, timing, table + JSON output."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> Dict[str, object]:
    return {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def config_f_pickle() -> Path:
    """A (G, D, Gs) pickle at config-f size with random weights, written once by our writer (never committed)."""
    from stylegan2 import pickles
    from stylegan2.tiny import CONFIG_F_SETTINGS, random_generator

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "random-config-f.pkl"
    if not path.exists():
        pickles.save(random_generator(0, CONFIG_F_SETTINGS), path)
    return path


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def report(name: str, rows: List[Dict[str, object]], columns: List[str], folder: Path = RESULTS_DIR) -> Path:
    """Print a table and write ``<folder>/<name>.json`` (default bench/results)."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths)))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / ("%s.json" % name)
    out.write_text(json.dumps({"bench": name, "machine": machine(), "rows": rows}, indent=1))
    print("wrote %s" % out)
    return out


def _fmt(value: object) -> str:
    return "%.4g" % value if isinstance(value, float) else str(value)
