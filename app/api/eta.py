"""Seconds left in a projection, from steady-state step times: the first step a job reports includes
building the graph (tens of seconds on tf1, once per process), so the clock starts at the first step seen
and only the steps after it count. Step times come from the job's own ``updated_at`` (set when the worker
reported the step), so how often anyone asks does not matter."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional, Tuple

from ..jobs.job import Job

MAX_TRACKED = 4096  # jobs remembered per API process (oldest forgotten first)


class StepClock:
    def __init__(self) -> None:
        self._first: "OrderedDict[Tuple[str, int], Tuple[int, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def seconds_left(self, job: Job) -> Optional[float]:
        """None until two different steps of this attempt have been seen."""
        if job.step < 1 or not job.total:
            return None
        key = (job.id, job.attempts)
        with self._lock:
            first = self._first.setdefault(key, (job.step, job.updated_at))
            while len(self._first) > MAX_TRACKED:
                self._first.popitem(last=False)
        step0, time0 = first
        if job.step <= step0 or job.updated_at <= time0:
            return None
        per_step = (job.updated_at - time0) / (job.step - step0)
        return round(per_step * (job.total - job.step), 1)


STEP_CLOCK = StepClock()
