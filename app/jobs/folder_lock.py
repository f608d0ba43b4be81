"""One process per data folder: the SQLite store's jobs belong to the process that holds the folder's lock.
Without it a second start on the same folder takes the first one's running job for an interrupted one and
runs it again beside it. The lock is the kernel's (flock), so it goes with its process however that ends,
SIGKILL included, and the next start recovers what was left. Several API processes share jobs through Redis
(TOONIFY_QUEUE=redis), never through one folder."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..startup import StartupError

LOCK_FILE = "toonify.lock"  # in the data folder; holds the holder's pid, port and host, for the message


class DataFolderInUse(StartupError):
    """Another process holds the data folder."""


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file (it may not have written it yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096).decode("utf-8"))
        return "pid %s, port %s, on %s since %s" % (record["pid"], record["port"], record["host"],
                                                   time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["since"])))
    except (ValueError, KeyError, TypeError):
        return "pid unknown: it is starting"


class DataFolderLock:
    """Held from acquire() to the end of the process: the descriptor is never closed, so the lock cannot be
    dropped by accident (a closed descriptor releases a flock)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, data_dir: Path, port: int) -> "DataFolderLock":
        """The data folder's lock, or DataFolderInUse naming its holder; nothing in the folder is touched
        but the lock file."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DataFolderInUse(
                "TOONIFY_DATA_DIR=%s is in use by another Toonify process (%s): stop that one first, or give this "
                "one its own TOONIFY_DATA_DIR; several API processes share jobs only with TOONIFY_QUEUE=redis"
                % (data_dir, holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "port": port, "host": socket.gethostname(),
                                 "since": time.time()}).encode("utf-8"))
        return cls(path, fd)
