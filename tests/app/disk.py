"""A small real filesystem (tmpfs, mounted by the test; needs root) that a test can fill and free."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path


def can_mount() -> bool:
    """Root, and allowed to mount here (a container without CAP_SYS_ADMIN is not): tried once, for real."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder],
                                 capture_output=True).returncode == 0
        if mounted:
            subprocess.run(["umount", folder], check=False)
    return mounted


class SmallDisk:
    def __init__(self, mount_point: Path, size_mb: int) -> None:
        self.path = Path(mount_point)
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", str(self.path)], check=True)
        self.filler = self.path / "filler.bin"

    def free_bytes(self) -> int:
        stats = os.statvfs(str(self.path))
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave_bytes: int = 0) -> None:
        """Write until only ``leave_bytes`` are free (0: until the filesystem refuses a single byte)."""
        with open(str(self.filler), "ab", buffering=0) as handle:
            for block in (1 << 20, 1 << 16, 1 << 12, 1):
                try:
                    while self.free_bytes() - block >= leave_bytes:
                        handle.write(bytes(block))
                    if leave_bytes == 0:
                        while True:
                            handle.write(bytes(block))
                except OSError:
                    continue

    def free(self) -> None:
        if self.filler.exists():
            self.filler.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
