"""What styles cost (issue 26.5), on the models bench/startup_models.py writes (config-f: random weights from our
writer; each extra style is the toon file read again, so it has its own host copy as a real style would).

memory: peak and resident memory of a fresh process after loading FFHQ, then after each of ``--styles``
styles, then after one style's in-between generator; per style = the difference. With ``--bound 1``
(TOONIFY_STYLES_ON_DEVICE=1) the styles past the first keep only their host weights; then what their first render
adds is timed (dropping a held style, building one from the host). On a GPU the device share is the generator
alone.

speed: one projection rendered in N styles (one projection + N syntheses) against N projections (N × (steps ×
one step + one synthesis)); a step and a synthesis per style are measured, never 500 steps.

    python -m bench.styles memory --engine tf1|torch [--size config-f|tiny] [--runs 3] [--styles 4] [--bound 0 1]
    python -m bench.styles speed --engine tf1|torch [--size config-f|tiny] [--styles 4] [--repeats 2] [--steps 2]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

from bench.common import median_seconds, report
from bench.memory import MB, peak_rss_bytes
from bench.projection import _step_seconds
from bench.startup_models import startup_models
from stylegan2 import pickles
from stylegan2.engines import ENGINES, backend
from stylegan2.generator_pair import GeneratorPair
from stylegan2.layout import describe
from stylegan2.model_files import ModelPaths
from stylegan2.projection import DEFAULT_STEPS
from stylegan2.toonifier import Toonifier

SIZES = ("config-f", "tiny")


def style_name(index: int) -> str:
    return "style%d" % index


def rss_bytes() -> int:
    """Resident memory now (Linux): what stays held, where the peak also counts transient copies."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory(engine: str, size: str, styles: int, bound: int) -> Dict[str, List[int]]:
    """In this process: peak and resident memory after FFHQ, after each style added, after one in-between
    generator (built, not rendered: weights only)."""
    paths = ModelPaths.in_dir(startup_models(size))
    pair = GeneratorPair(backend(engine), paths.ffhq, None, styles_on_device=bound)
    peaks, now = [peak_rss_bytes()], [rss_bytes()]
    for index in range(styles):
        pair.add_style(style_name(index), describe(pickles.load_generator(paths.toon)))
        gc.collect()
        peaks.append(peak_rss_bytes())
        now.append(rss_bytes())
    pair.held.get(pair.held.held[-1]).at(pair.ffhq_spec, 0.5)  # a held style: nothing dropped or rebuilt
    gc.collect()
    measured = {"peak": peaks + [peak_rss_bytes()], "rss": now + [rss_bytes()], "held": [len(pair.held.held)]}
    return dict(measured, rebuild_s=[_rebuild_seconds(pair, name) for name in pair.styles[1:]
                                     if name not in pair.held.held])


def _rebuild_seconds(pair: GeneratorPair, name: str) -> float:
    """The first render's extra cost for a style past the bound: dropping one and building it from the host."""
    started = time.perf_counter()
    pair.held.get(name)
    return time.perf_counter() - started


def memory_rows(engine: str, size: str, runs: int, styles: int, bound: int) -> List[Dict[str, object]]:
    """``runs`` fresh processes; the first style's, each further style's and the in-between generator's
    increments, min / median over runs (and over the further styles)."""
    startup_models(size)  # written here, so no child's figures include writing them
    samples: Dict[str, Dict[str, List[float]]] = {}
    rebuilds: List[float] = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-m", "bench.styles", "memory-child", "--engine", engine, "--size",
                              size, "--styles", str(styles), "--bound", str(bound)],
                             capture_output=True, text=True, check=True)
        child = json.loads(out.stdout.strip().splitlines()[-1])
        rebuilds.extend(child["rebuild_s"])
        print(engine, bound, {key: [round(v / MB) for v in child[key]] for key in ("peak", "rss")}, child["held"],
              flush=True)
        for key in ("peak", "rss"):
            steps = [(b - a) / MB for a, b in zip(child[key], child[key][1:])]
            for what, values in (("ffhq loaded", [child[key][0] / MB]), ("first style", steps[:1]),
                                 ("each further style", steps[1:-1]), ("in-between generator", steps[-1:])):
                samples.setdefault(what, {}).setdefault(key, []).extend(values)
    rows: List[Dict[str, object]] = [
        dict(engine=engine, size=size, bound=bound, what=what, peak_min_mb=min(by["peak"]),
             peak_median_mb=statistics.median(by["peak"]), rss_min_mb=min(by["rss"]),
             rss_median_mb=statistics.median(by["rss"]), samples=len(by["rss"])) for what, by in samples.items()]
    if rebuilds:
        rows.append(dict(engine=engine, size=size, bound=bound, what="rebuild a dropped style",
                         rebuild_min_s=min(rebuilds), rebuild_median_s=statistics.median(rebuilds),
                         samples=len(rebuilds)))
    return rows


def speed_rows(engine: str, size: str, styles: int, repeats: int, steps: int) -> List[Dict[str, object]]:
    """A synthesis in each style (median of ``repeats``) and a projection step (median of ``steps``)."""
    paths = ModelPaths.in_dir(startup_models(size))
    toonifier = Toonifier(engine, ModelPaths(paths.ffhq, paths.toon, paths.perceptual))
    for index in range(1, styles):
        toonifier.generators.add_style(style_name(index), describe(pickles.load_generator(paths.toon)))
    names = toonifier.generators.styles
    ws = np.repeat(toonifier.w_avg[None, None], toonifier.num_ws, axis=1)
    timings = [median_seconds(lambda name=name: toonifier.synthesize(ws, 1.0, name), repeats) for name in names]
    synth = [timing["median_s"] for timing in timings]
    step_times = _step_seconds(toonifier, 1, steps, "fp32")
    step = statistics.median(step_times)
    projection = DEFAULT_STEPS * step
    rows = []
    for count in range(1, len(names) + 1):
        once = projection + sum(synth[:count])
        each = count * projection + sum(synth[:count])
        rows.append(dict(engine=engine, size=size, styles=count, synthesis_s=synth[count - 1],
                         synthesis_min_s=timings[count - 1]["min_s"], step_s=step, step_min_s=min(step_times),
                         one_projection_n_styles_s=once, n_projections_s=each, ratio=each / once,
                         style_vs_projection=synth[count - 1] / projection))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["memory", "speed", "memory-child"])
    parser.add_argument("--engine", choices=sorted(ENGINES), default="torch")
    parser.add_argument("--size", choices=SIZES, default="config-f")
    parser.add_argument("--styles", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bound", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed projection steps (after a warm-up step)")
    args = parser.parse_args()
    if args.mode == "memory-child":
        print(json.dumps(measure_memory(args.engine, args.size, args.styles, args.bound[0])))
    elif args.mode == "memory":
        rows = [row for bound in args.bound for row in memory_rows(args.engine, args.size, args.runs, args.styles,
                                                                    bound)]
        report("styles-memory-%s-%s" % (args.engine, args.size), rows,
               ["engine", "size", "bound", "what", "peak_min_mb", "peak_median_mb", "rss_min_mb", "rss_median_mb",
                "rebuild_min_s", "rebuild_median_s", "samples"])
    else:
        rows = speed_rows(args.engine, args.size, args.styles, args.repeats, args.steps)
        report("styles-speed-%s-%s" % (args.engine, args.size), rows,
               ["engine", "size", "styles", "synthesis_s", "synthesis_min_s", "step_s", "step_min_s",
                "one_projection_n_styles_s", "n_projections_s", "ratio", "style_vs_projection"])


if __name__ == "__main__":
    main()
