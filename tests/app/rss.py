"""Peak memory of a server process, from the kernel: VmHWM restarted (clear_refs 5), measured above VmRSS."""
from __future__ import annotations

import re
from pathlib import Path


def kib(pid: int, field: str) -> int:
    return int(re.search(r"%s:\s+(\d+) kB" % field, Path("/proc/%d/status" % pid).read_text()).group(1))


class PeakRss:
    """``with PeakRss(pid) as rss: …`` → ``rss.peak_mb``: the process's peak RSS above its RSS at the start."""

    def __init__(self, pid: int) -> None:
        self.pid, self.baseline_kib, self.peak_mb = pid, 0, 0.0

    def __enter__(self) -> "PeakRss":
        Path("/proc/%d/clear_refs" % self.pid).write_text("5")  # restart the peak-RSS count (VmHWM) from now
        self.baseline_kib = kib(self.pid, "VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb = (kib(self.pid, "VmHWM") - self.baseline_kib) / 1024.0
