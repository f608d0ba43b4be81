"""Device memory for the product: how much is free, and whether an error means it ran out."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
from tensorflow.python.client import device_lib


def free_device_bytes() -> Optional[int]:
    """The memory TensorFlow may use on the first GPU (what was free when it created the device); None on
    CPU."""
    gpus = [device for device in device_lib.list_local_devices() if device.device_type == "GPU"]
    return int(gpus[0].memory_limit) if gpus else None


def is_out_of_memory(exc: BaseException) -> bool:
    """TensorFlow's "OOM when allocating tensor"."""
    return isinstance(exc, tf.errors.ResourceExhaustedError)
