"""The torch engine's surface, the stylegan2.contracts.Backend that ``stylegan2.engines.backend('torch')`` returns."""
from .memory import free_device_bytes, is_out_of_memory
from .networks import Generator
from .precision import device_traits
from .projector import build_projector, lpips_distance, regularization_value
from .student import Student

__all__ = ["Generator", "Student", "build_projector", "device_traits", "free_device_bytes", "is_out_of_memory",
           "lpips_distance", "regularization_value"]
