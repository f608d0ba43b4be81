"""Layer-swap blending of two generators (blend_models.py, spec §6) and weight interpolation."""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Mapping, Optional, Tuple

import numpy as np

from .errors import ModelStructureError
from .layout import describe
from .pickles import NetworkRecord

LEVEL_SCOPES = (("Conv0_up", "Const"), ("Conv1", "ToRGB"))
MAX_LOG2_RESOLUTION = 10


def _position(name: str) -> Optional[int]:
    """2·i + level for synthesis trainables covered by the original parameter list, else None."""
    for i in range(MAX_LOG2_RESOLUTION - 1):
        res = 4 * 2 ** i
        for level, scopes in enumerate(LEVEL_SCOPES):
            if any(name.startswith("%dx%d/%s" % (res, res, scope)) for scope in scopes):
                return 2 * i + level
    return None


def blend_weight(position: int, mid: int, width: Optional[float]) -> float:
    """Share of the high-res model: hard switch at x > 1, or logistic with ``width`` (spec §6)."""
    x = position - mid
    if width is None:
        return 1.0 if x > 1 else 0.0
    return 1.0 / (1.0 + math.exp(-x / width))


def blend_generators(
    low: Tuple[NetworkRecord, ...], high: Tuple[NetworkRecord, ...], resolution: int, level: int = 0,
    width: Optional[float] = None,
) -> Tuple[NetworkRecord, ...]:
    """(low G, low D, blended Gs): everything from ``low`` except the listed synthesis trainables."""
    return (low[0], low[1], blend_gs(low[2], high[2], resolution, level, width))


def blend_gs(low_gs: NetworkRecord, high_gs: NetworkRecord, resolution: int, level: int = 0,
             width: Optional[float] = None) -> NetworkRecord:
    """The blended ``Gs`` alone: what the CLI writes and what a style blended at load renders (one code path,
    so both give the same pixels)."""
    describe(low_gs), describe(high_gs)  # both must be valid generators
    log2 = int(round(math.log2(resolution)))
    if 2 ** log2 != resolution or not 4 <= resolution <= 2 ** MAX_LOG2_RESOLUTION:
        raise ModelStructureError("blend resolution must be a power of two from 4 to 1024; got %r" % resolution)
    if level not in (0, 1):
        raise ModelStructureError("blend level must be 0 or 1; got %r" % level)
    mid = 2 * (log2 - 2) + level
    blended = copy.deepcopy(low_gs)
    low_vars = low_gs.component("synthesis").variables
    high_vars = high_gs.component("synthesis").variables
    out_vars = blended.component("synthesis").variables
    for name, low_value in low_vars.items():
        position = _position(name)
        if position is None or name.startswith("noise"):
            continue
        if high_vars[name].shape != low_value.shape:
            raise ModelStructureError(
                "cannot blend %s: shapes %s and %s" % (name, low_value.shape, high_vars[name].shape)
            )
        y = blend_weight(position, mid, width)
        value = y * high_vars[name].astype(np.float64) + (1 - y) * low_value.astype(np.float64)
        out_vars[name] = value.astype(np.float32)
    return blended


def interpolate_variables(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], alpha: float
) -> "OrderedDict[str, np.ndarray]":
    """(1−α)·a + α·b for every variable; α = 0 gives a and α = 1 gives b exactly (toon strength)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be within [0, 1]; got %r" % alpha)
    if list(a) != list(b):
        raise ModelStructureError("cannot interpolate generators with different variables")
    wa, wb = np.float32(1.0 - alpha), np.float32(alpha)
    return OrderedDict((name, (wa * a[name] + wb * b[name]).astype(np.float32)) for name in a)
