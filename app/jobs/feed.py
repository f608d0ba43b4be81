"""One change feed per store: which jobs changed, announced to whoever listens (event streams, waiting
requests), so that nobody polls the store per client.

Each store announces the changes its own write paths make. SQLite: a trigger logs every change of the jobs
table (``job_changes``, a counter and the job id), whichever process or connection made it; this process's
writes wake the feed's one reader thread at once, and that thread also notices other processes' commits
(``PRAGMA data_version``: no table is read while nothing changed) every OTHERS_S. Redis: the Lua scripts and
transactions that change a job PUBLISH its key on CHANNEL; one subscriber connection per process listens.

A listener gets a set of job ids, or EVERYTHING when changes may have been missed (a Redis reconnect, a log
read after its oldest entry was pruned): it should then re-read what it watches. Listeners run on the feed's
thread and must not block (hand the ids to an event loop or a queue)."""
from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Callable, FrozenSet, List, Optional

from redis import Redis

log = logging.getLogger("toonify.feed")
Changed = Optional[FrozenSet[str]]
EVERYTHING: Changed = None
Listener = Callable[[Changed], None]
OTHERS_S = 0.2  # SQLite: how soon a change made by another process is seen
RECONNECT_S = 1.0  # Redis: the pause before subscribing again after the connection broke
LOG_KEPT = 10000  # SQLite: change-log entries kept; a reader further behind than this re-reads everything

# The change log; each trigger prunes what fell out of the window as it appends.
SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL);
""" + "".join("""
CREATE TRIGGER IF NOT EXISTS job_%(event)s AFTER %(event)s ON jobs BEGIN
INSERT INTO job_changes (job) VALUES (%(row)s.id);
DELETE FROM job_changes WHERE seq <= last_insert_rowid() - %(kept)d;
END;
""" % dict(event=event, row=row, kept=LOG_KEPT) for event, row in (("insert", "new"), ("update", "new"),
                                                                 ("delete", "old")))


class ChangeFeed:
    """The listeners of one store's changes, and the thread that reads the changes for them (started with the
    first listener; the processes that only write, such as workers, start none)."""

    def __init__(self) -> None:
        self._listeners: List[Listener] = []
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.closed = threading.Event()

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            if self._thread is None:
                self._thread = threading.Thread(target=self._follow, args=(self._position(),),
                                                name="toonify-change-feed", daemon=True)
                self._thread.start()

    def unlisten(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def close(self) -> None:
        self.closed.set()
        self.nudge()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def nudge(self) -> None:
        """This process changed a job: look now (SQLite; Redis's subscriber hears its own publishes)."""

    def announce(self, changed: Changed) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(changed)
            except Exception:  # one broken listener must not starve the others
                log.exception("a change listener failed")

    def _position(self) -> Any:
        """Where the feed stands as the first listener arrives, read before that listener goes on: a change
        made after ``listen`` returns is heard, however late the thread starts."""
        return None

    def _follow(self, since: Any) -> None:
        raise NotImplementedError


class SqliteChangeFeed(ChangeFeed):
    """Follows the ``job_changes`` log on a connection of its own."""

    def __init__(self, database: Path) -> None:
        super().__init__()
        self.database = database
        self._nudged = threading.Event()

    def nudge(self) -> None:
        self._nudged.set()

    def _position(self) -> int:
        with closing(sqlite3.connect(str(self.database), timeout=30)) as db:
            return db.execute("SELECT COALESCE(MAX(seq), 0) FROM job_changes").fetchone()[0]

    def _follow(self, since: int) -> None:
        db = sqlite3.connect(str(self.database), timeout=30)
        last = since
        try:
            version = None
            while not self.closed.is_set():
                self._nudged.wait(OTHERS_S)
                self._nudged.clear()
                try:
                    (now,) = db.execute("PRAGMA data_version").fetchone()
                    if now == version:
                        continue
                    version = now
                    rows = db.execute("SELECT seq, job FROM job_changes WHERE seq > ? ORDER BY seq",
                                      (last,)).fetchall()
                except sqlite3.Error:  # a locked or briefly unreadable database: try again at the next round
                    log.exception("reading the job change log failed")
                    version = None
                    continue
                if rows:
                    missed = rows[0][0] > last + 1
                    last = rows[-1][0]
                    self.announce(EVERYTHING if missed else frozenset(job for _, job in rows))
        finally:
            db.close()


class RedisChangeFeed(ChangeFeed):
    """One pub/sub connection, subscribed to CHANNEL, for the whole process."""

    def __init__(self, redis: Redis, channel: str, key_prefix: str) -> None:
        super().__init__()
        self.redis, self.channel, self.key_prefix = redis, channel, key_prefix

    def _follow(self, since: None) -> None:
        """Everything published before the subscription is announced as EVERYTHING once it holds."""
        while not self.closed.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.announce(EVERYTHING)  # what was published before (or while reconnecting) is not heard
                while not self.closed.is_set():
                    message = pubsub.get_message(timeout=RECONNECT_S)
                    changed = set()
                    while message is not None:  # everything already arrived, as one announcement
                        changed.add(message["data"].decode()[len(self.key_prefix):])
                        message = pubsub.get_message(timeout=0)
                    if changed:
                        self.announce(frozenset(changed))
            except Exception:  # Redis restarting or unreachable: subscribe again shortly
                log.warning("the job change subscription broke; subscribing again", exc_info=True)
                self.closed.wait(RECONNECT_S)
            finally:
                pubsub.close()
