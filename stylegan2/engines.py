"""Engine registry: names → the sub-package that implements them. Imported lazily so one Python can run
without the other engine's framework installed."""
from __future__ import annotations

import importlib
from types import ModuleType

ENGINES = {"tf1": "stylegan2.tf", "torch": "stylegan2.torch"}


def engine_module(name: str, part: str) -> ModuleType:
    """``engine_module('tf1', 'networks')`` → stylegan2.tf.networks."""
    try:
        package = ENGINES[name]
    except KeyError:
        raise ValueError("unknown engine %r (choose from %s)" % (name, ", ".join(sorted(ENGINES)))) from None
    return importlib.import_module(package + "." + part)
