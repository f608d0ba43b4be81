"""Typed errors of the model library, with messages meant for the person running it."""
from __future__ import annotations


class ModelError(Exception):
    """Base class: anything wrong with a model file or its contents."""


class UnsafeModelError(ModelError):
    """The pickle asks for a Python global outside the allow-list (it could run code)."""


class ModelFileError(ModelError):
    """The file is not a usable pickle: HTML instead of a model, truncated, empty, wrong kind."""


class ModelStructureError(ModelError):
    """The pickle loaded but its networks do not have the variables or settings we can build."""


class EngineUnavailable(RuntimeError):
    """This Python lacks the framework an engine runs on (each engine has its own environment)."""
