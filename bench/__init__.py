"""Benchmarks, each run as ``python -m bench.NAME``: under the service's allocator policy (app.memory, applied
here, at the entry of every bench process), so their timings and memory are the service's."""
from app.memory import keep_freed_memory

keep_freed_memory()
