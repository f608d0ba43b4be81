"""The FIR filter of StyleGAN2's resampling (spec §3.6–3.8) and the padding each use needs."""
from __future__ import annotations

from typing import Sequence

import numpy as np

RESAMPLE_TAPS = (1, 3, 3, 1)
UP = 2
# upfirdn2d padding (pad0, pad1) for a 4-tap kernel, up-sampling by 2 (spec §3.8 table).
SKIP_UPSAMPLE_PAD = (2, 1)  # upsample_2d of the RGB skip path
AFTER_TRANSPOSED_CONV_PAD = (1, 1)  # FIR after conv2d_transpose(stride 2) of Conv0_up


def fir_kernel(taps: Sequence[int] = RESAMPLE_TAPS, gain: float = UP * UP) -> np.ndarray:
    """2-D kernel: outer product of the taps, normalised to sum 1, times gain (× up² when up-sampling)."""
    k = np.asarray(taps, dtype=np.float32)
    k2 = np.outer(k, k)
    return (k2 / k2.sum() * gain).astype(np.float32)
