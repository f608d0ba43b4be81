"""Engine registry: names → the backend module that implements stylegan2.contracts.Backend. Imported lazily
so one Python can run without the other engine's framework installed."""
from __future__ import annotations

import importlib
from typing import cast

from .contracts import Backend

ENGINES = {"tf1": "stylegan2.tf.backend", "torch": "stylegan2.torch.backend"}


def backend(name: str) -> Backend:
    """``backend('tf1')`` → stylegan2.tf.backend, typed by the contract it satisfies."""
    try:
        module = ENGINES[name]
    except KeyError:
        raise ValueError("unknown engine %r (choose from %s)" % (name, ", ".join(sorted(ENGINES)))) from None
    return cast(Backend, importlib.import_module(module))
