"""Numbers of the StyleGAN2 network definition, written once for both engines and the NumPy test-model
writer (spec §3)."""
from __future__ import annotations

import math

LRELU_SLOPE = 0.2  # fused_bias_act 'lrelu' (spec §3.2)
LRELU_GAIN = math.sqrt(2.0)  # … and its gain g (spec §3.2)
PIXEL_NORM_EPS = 1e-8  # the mapping's pixel norm of z (spec §3.3)
DEMOD_EPS = 1e-8  # added to the sum of squared modulated weights (spec §3.4)
