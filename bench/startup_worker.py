"""One cold start of the service, timed from inside: driven by bench/startup.py, one fresh process per start.

Run by path with PYTHONPATH at a revision's checkout (so a comparison runs that revision's code): imports what
``python -m app serve`` imports, composes the service as create_app does, starts it as the server's start-up
event does, waits until the readiness that /readyz reports holds, then projects one step of one face. Prints one
JSON line of wall-clock stamps (the parent knows when it spawned us), CPU seconds and the phases the code
recorded (stylegan2.timings; empty for a revision without it). Python 3.7 compatible.

    python bench/startup_worker.py ENGINE MODELS_DIR CACHE_DIR DATA_DIR
"""
import time

STARTED = time.time()  # before any import of ours: interpreter start-up is what the parent sees before this

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import uvicorn  # noqa: E402,F401  (what serve imports)

from app.api import create_app  # noqa: E402
from app.config import Settings  # noqa: E402
from app.options import ProjectionOptions  # noqa: E402

READY_POLL_S = 0.01


@contextmanager
def _no_recording():
    yield {}


try:
    from stylegan2.timings import recording
except ImportError:  # a revision before stylegan2/timings.py
    recording = _no_recording


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_ready(service) -> None:
    """Until service.readiness() — what /readyz answers — says ready; the load's failure as an error."""
    while not service.readiness()[0]:
        if service.models_problem:
            raise RuntimeError(service.models_problem)
        time.sleep(READY_POLL_S)


def main() -> None:
    engine, models_dir, cache_dir, data_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    stamps = {"started": STARTED, "imported": time.time()}
    settings = Settings(engine=engine, models_dir=models_dir, cache_dir=cache_dir, data_dir=data_dir)
    service = create_app(settings).state.service
    stamps["composed"] = time.time()
    service.start()
    wait_ready(service)
    stamps["ready"], ready_cpu = time.time(), cpu_seconds()
    toonify = service.toonify
    face = np.random.RandomState(0).randint(0, 256, (1, toonify.resolution, toonify.resolution, 3)).astype(np.uint8)
    with recording() as step_phases:
        toonify.project_aligned(face, ProjectionOptions(steps=1, seed=0))
    stamps["first_step"] = time.time()
    print(json.dumps({"stamps": stamps, "ready_cpu_s": ready_cpu, "first_step_cpu_s": cpu_seconds(),
                      "setup_phases": getattr(toonify, "load_phases", {}), "step_phases": step_phases,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}), flush=True)
    service.begin_shutdown()
    service.stop()


if __name__ == "__main__":
    main()
