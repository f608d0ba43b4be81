"""One engine of one revision, driven by bench/compare.py over stdin/stdout (one JSON object per line).

Run by path with PYTHONPATH at the revision's checkout, so ``import stylegan2`` is that revision's code. Uses
only the API every revision has (Toonifier, ModelPaths, ProjectorConfig, synthesize); Python 3.7 compatible."""
import json
import resource
import sys
from pathlib import Path

import numpy as np

from stylegan2.projection import ProjectorConfig
from stylegan2.toonifier import Toonifier

try:
    from stylegan2.model_files import ModelPaths
except ImportError:  # revisions before stylegan2/model_files.py kept it in the toonifier module
    from stylegan2.toonifier import ModelPaths


def main() -> None:
    engine, ffhq, perceptual = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    toonifier = Toonifier(engine, ModelPaths(ffhq, None, perceptual))
    res = toonifier.resolution
    targets = np.random.RandomState(0).randint(0, 256, (1, res, res, 3)).astype(np.uint8)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "steps":
            result = toonifier.project(targets, [0], ProjectorConfig(steps=request["steps"]))
            reply = {"step_seconds": result.step_seconds, "losses": result.losses}
        elif request["cmd"] == "render":
            ws = np.random.RandomState(request["seed"]).randn(1, toonifier.num_ws, 512).astype(np.float32) * 0.8
            images = toonifier.ffhq.synthesize(ws)
            np.save(request["out"], images)
            reply = {"saved": request["out"]}
        else:
            break
        reply["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
