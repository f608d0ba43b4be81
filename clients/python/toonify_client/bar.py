"""A job's progress for people: one redrawn line on a terminal; on a pipe or in a log, a plain line only when
the stage changes or another tenth of the steps is done (no carriage returns, no flood)."""
from __future__ import annotations

from typing import Any, Dict, Optional, TextIO, Tuple

WIDTH = 24


def describe(job: Dict[str, Any]) -> str:
    """``[######------]  40% projecting 8/20, ETA 12 s`` (queued: the place in the queue)."""
    if job["status"] == "queued":
        place = job.get("queue_position")
        return "queued" + (" (position %d)" % place if place is not None else "")
    if job["status"] != "running" or not job.get("total"):
        return "%s%s" % (job["status"], " (%s)" % job["stage"] if job["status"] == "running" else "")
    done = min(1.0, job["step"] / job["total"])
    filled = int(round(done * WIDTH))
    eta = job.get("eta_s")
    return "[%s%s] %3d%% %s %d/%d%s" % ("#" * filled, "-" * (WIDTH - filled), round(done * 100), job["stage"],
                                        job["step"], job["total"], ", ETA %d s" % round(eta) if eta else "")


class ProgressDisplay:
    """Feed it every state of the job (``update``); ``close`` ends the terminal's line."""

    def __init__(self, stream: TextIO, tty: Optional[bool] = None) -> None:
        self.stream, self.tty = stream, stream.isatty() if tty is None else tty
        self.width = 0
        self.shown: Optional[Tuple[str, str, int]] = None

    def update(self, job: Dict[str, Any]) -> None:
        line = describe(job)
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            tenth = int(10 * job["step"] / job["total"]) if job.get("total") else 0
            key = (job["status"], str(job.get("stage")), tenth)
            if key == self.shown:
                return
            self.shown = key
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
