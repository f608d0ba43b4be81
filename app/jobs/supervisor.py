"""A watchdog for the embedded worker: the worker's loop survives every Exception, but should its thread end
anyway (a BaseException, a bug), a new one is started within a second, and /readyz says so meanwhile. Once
the service is stopping (SIGTERM), a worker that ends is never replaced."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Tuple

from .local import LocalWorker

log = logging.getLogger("toonify.worker")
CHECK_EVERY_S = 1.0


class WorkerSupervisor:
    def __init__(self, make_worker: Callable[[], LocalWorker], recover: Callable[[], object],
                 check_every_s: float = CHECK_EVERY_S) -> None:
        """``recover``: puts the jobs a dead worker left running back in the queue (or fails them)."""
        self.make_worker, self.recover = make_worker, recover
        self.check_every_s = check_every_s
        self.worker = make_worker()
        self.restarts = 0
        self.last_death: Optional[str] = None
        self._stopping = threading.Event()
        self._replacing = threading.Lock()  # a restart and begin_stop never interleave
        self._watchdog = threading.Thread(target=self._watch, name="toonify-worker-watchdog", daemon=True)

    def start(self) -> None:
        self.worker.start()
        self._watchdog.start()

    def wake(self) -> None:
        self.worker.wake.set()

    def _watch(self) -> None:
        while not self._stopping.wait(self.check_every_s):
            with self._replacing:
                if not self.worker.is_alive() and not self._stopping.is_set():
                    self._restart()

    def _restart(self) -> None:
        self.last_death = "the job worker stopped at %s (last error: %s)" % (
            time.strftime("%H:%M:%S"), self.worker.last_error or "none recorded")
        log.error("%s; starting a new one", self.last_death)
        unsettled = self.worker.unsettled
        try:
            self.recover()
        except Exception:  # the new worker settles them later
            log.exception("re-queuing the dead worker's job failed")
        self.worker = self.make_worker()
        self.worker.unsettled.update(unsettled)
        self.worker.start()
        self.restarts += 1

    def alive(self) -> Tuple[bool, str]:
        """(True, "") while the worker thread runs; else why it is not running."""
        if self.worker.is_alive():
            return True, ""
        if self._stopping.is_set():
            return False, "the server is shutting down"
        return False, self.last_death or "the job worker is not running; the watchdog is restarting it"

    def begin_stop(self) -> None:
        """From now on no worker is started and no job taken; the running job stops within a step and goes
        back to the queue. Returns at once (called from the SIGTERM handler)."""
        with self._replacing:
            self._stopping.set()
            self.worker.stop()

    def stop(self, timeout_s: float) -> bool:
        """Stop the worker (its running job goes back to the queue); True if it ended within ``timeout_s``."""
        self.begin_stop()
        self.worker.join(timeout_s)
        return not self.worker.is_alive()
