"""Regions a projection step is profiled by (bench/profile_step.py): torch.profiler labels in the torch engine,
name scopes in the tf1 engine, so one table reads both."""
from __future__ import annotations

from .layout import LayerSpec

REGION_FIR = "upfir"
REGION_NOISE = "noise"
REGION_BIAS_ACT = "bias_act"
REGION_VGG = "vgg16"
REGION_NOISE_REG = "noise_reg"
REGION_ADAM = "adam"
REGION_RENORM = "renorm"


def layer_region(layer: LayerSpec) -> str:
    """toRGB, or the modulated conv of one resolution (Conv0_up and Conv1 together)."""
    return "toRGB" if layer.kind == "rgb" else "modconv_%d" % layer.resolution
