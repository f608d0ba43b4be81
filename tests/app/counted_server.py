"""``python -m tests.app.counted_server serve ...``: the service exactly as ``python -m app`` runs it, except that
every job read of its store (the real store's ``get``, wrapped, in any thread) is counted and the count written
to the file named by COUNTED_READS_FILE every WRITE_EVERY_S, for tests that show what a load costs the store."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from app.cli import run
from app.jobs.redis_store import RedisJobStore
from app.jobs.sqlite_store import SqliteJobStore

WRITE_EVERY_S = 0.05
_reads = 0
_lock = threading.Lock()


def _counted(read: Callable[..., Any]) -> Callable[..., Any]:
    def get(self: Any, job_id: str) -> Any:
        global _reads
        with _lock:
            _reads += 1
        return read(self, job_id)

    return get


def _write_count(path: Path) -> None:
    while True:
        path.with_suffix(".tmp").write_text(str(_reads))
        os.replace(str(path.with_suffix(".tmp")), str(path))
        time.sleep(WRITE_EVERY_S)


if __name__ == "__main__":
    SqliteJobStore.get = _counted(SqliteJobStore.get)  # type: ignore[method-assign]
    RedisJobStore.get = _counted(RedisJobStore.get)  # type: ignore[method-assign]
    threading.Thread(target=_write_count, args=(Path(os.environ["COUNTED_READS_FILE"]),), daemon=True).start()
    run()
