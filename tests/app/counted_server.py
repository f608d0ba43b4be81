"""``python -m tests.app.counted_server serve ...``: the service exactly as ``python -m app`` runs it, except that
the job reads of its store (the real store's ``get``, wrapped, in any thread) and the job changes (its write
paths, wrapped likewise) are counted, and both counts written to the file named by COUNTED_READS_FILE
("reads changes taken_at", taken_at the wall-clock time the counts were taken) every WRITE_EVERY_S, for tests
that show what a load costs the store."""
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
CHANGES = ("claim_next", "progress", "publish_preview", "finish", "requeue", "cancel", "delete")
_counts = {"get": 0, "change": 0}
_lock = threading.Lock()


def _counted(call: Callable[..., Any], kind: str) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            _counts[kind] += 1
        return call(*args, **kwargs)

    return counted


def _write_count(path: Path) -> None:
    while True:
        with _lock:
            line = "%d %d %.6f" % (_counts["get"], _counts["change"], time.time())
        path.with_suffix(".tmp").write_text(line)
        os.replace(str(path.with_suffix(".tmp")), str(path))
        time.sleep(WRITE_EVERY_S)


if __name__ == "__main__":
    for store in (SqliteJobStore, RedisJobStore):
        store.get = _counted(store.get, "get")  # type: ignore[method-assign]
        for name in CHANGES:
            if hasattr(store, name):
                setattr(store, name, _counted(getattr(store, name), "change"))
    threading.Thread(target=_write_count, args=(Path(os.environ["COUNTED_READS_FILE"]),), daemon=True).start()
    run()
