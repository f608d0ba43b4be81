"""Engine registry: names → the backend module that implements stylegan2.contracts.Backend. Imported lazily
so one Python can run without the other engine's framework installed."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import List, cast

from .contracts import Backend
from .errors import EngineUnavailable

ENGINES = {"tf1": "stylegan2.tf.backend", "torch": "stylegan2.torch.backend"}
FRAMEWORKS = {"tf1": ("tensorflow", "TensorFlow 1.15"), "torch": ("torch", "PyTorch")}
ENVIRONMENTS = {"tf1": ".venv/tf1", "torch": ".venv/torch"}  # what `make venvs` builds for each engine


def installed_engines() -> List[str]:
    """The engines whose framework this Python has: looked up, not imported (milliseconds, not seconds)."""
    return [name for name, (module, _) in sorted(FRAMEWORKS.items()) if importlib.util.find_spec(module) is not None]


def require_engine(name: str) -> None:
    """Raise EngineUnavailable, naming the environment to use, when this Python cannot run ``name``: found
    before any model loads, not as a ModuleNotFoundError from deep inside the engine."""
    if name not in ENGINES:
        raise ValueError("unknown engine %r (choose from %s)" % (name, ", ".join(sorted(ENGINES))))
    if name in installed_engines():
        return
    others = [other for other in installed_engines() if other != name]
    instead = ", or use the %s engine, which this Python has" % others[0] if others else ""
    raise EngineUnavailable("the %s engine needs %s, which this Python (%s, %d.%d) does not have: run it with "
                            "%s/bin/python%s" % (name, FRAMEWORKS[name][1], sys.executable, sys.version_info[0],
                                                 sys.version_info[1], ENVIRONMENTS[name], instead))


def backend(name: str) -> Backend:
    """``backend('tf1')`` → stylegan2.tf.backend, typed by the contract it satisfies."""
    require_engine(name)
    return cast(Backend, importlib.import_module(ENGINES[name]))
