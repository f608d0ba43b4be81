"""Disk space as a first-class condition: recognise "no space left" wherever it comes from (the filesystem or
SQLite), refuse new work before the disk fills, and write files so that a failure leaves nothing half-written."""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from .errors import ToonifyError

OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
RETRY_AFTER_S = 60


class StorageFull(ToonifyError):
    """The server cannot store the job or its results until an operator frees disk space."""

    code = "storage_full"
    retry_after_s = RETRY_AFTER_S


def is_out_of_space(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT from the filesystem and for SQLite's "database or disk is full"."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE_ERRNOS:
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(str(folder)).free


def _megabytes(count: int) -> str:
    return "%.1f MB" % (count / 1e6)


def check_free_space(folder: Path, floor_bytes: int) -> None:
    """Raise StorageFull when less than ``floor_bytes`` are free where jobs are stored."""
    if floor_bytes <= 0:
        return
    free = free_bytes(folder)
    if free < floor_bytes:
        raise StorageFull("the server's disk is nearly full (%s free, %s needed to take new jobs); try again later"
                          % (_megabytes(free), _megabytes(floor_bytes)))


def storage_full_from(exc: BaseException) -> StorageFull:
    return exc if isinstance(exc, StorageFull) else StorageFull(
        "the server ran out of disk space while storing the job; try again later")


def write_atomically(path: Path, data: bytes) -> None:
    """The file appears whole or not at all: written beside its final name, then renamed over it."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(str(partial), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(str(partial), str(path))
    except BaseException:
        try:
            partial.unlink()
        except OSError:
            pass
        raise


class SpaceReserve:
    """A file of ``size_bytes`` kept beside the database and given up when a write that must not fail (a
    cancel, a delete, the end of a job) finds the disk full: on a full disk SQLite cannot even record a
    DELETE. It is made again once there is room."""

    def __init__(self, path: Path, size_bytes: int = 1024 * 1024) -> None:
        self.path, self.size_bytes = Path(path), size_bytes

    def ensure(self) -> bool:
        """True when the reserve is in place (made now if there is room)."""
        try:
            if self.path.stat().st_size == self.size_bytes:
                return True
        except OSError:
            pass
        try:
            write_atomically(self.path, bytes(self.size_bytes))
            return True
        except OSError:
            return False

    def release(self) -> bool:
        """True if the reserve was there and is now free space."""
        try:
            self.path.unlink()
            return True
        except OSError:
            return False
