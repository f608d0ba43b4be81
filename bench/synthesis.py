"""One synthesis forward at config-f size (1024², random weights from our writer): median of N.

    python -m bench.synthesis --engine tf1 [--repeats 5] [--batch 1] [--tiny]
"""
from __future__ import annotations

import argparse

import numpy as np

from bench.common import config_f_pickle, median_seconds, report
from stylegan2 import pickles
from stylegan2.engines import ENGINES, backend
from stylegan2.layout import describe
from tests.conftest import STYLEGAN_FIXTURES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="tf1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--tiny", action="store_true", help="the 64² fixture model instead of config-f")
    args = parser.parse_args()
    path = STYLEGAN_FIXTURES / "tiny-ffhq.pkl" if args.tiny else config_f_pickle()
    spec = describe(pickles.load_generator(path))
    generator = backend(args.engine).Generator(spec)
    rows = []
    for batch in args.batch:
        ws = np.random.RandomState(0).randn(batch, spec.num_ws, spec.w_dim).astype(np.float32)
        timing = median_seconds(lambda ws=ws: generator.synthesize(ws), args.repeats)
        rows.append(dict(engine=args.engine, resolution=spec.resolution, batch=batch,
                         per_image_s=timing["median_s"] / batch, **timing))
    report("synthesis-%s-%d" % (args.engine, spec.resolution), rows,
           ["engine", "resolution", "batch", "median_s", "per_image_s", "min_s", "max_s", "repeats"])


if __name__ == "__main__":
    main()
