"""Both job stores keep the JobStore contract the API, the runner and the workers are written against: every
method, with the same parameters, defaults and types. A store that drifts fails here, not in production on
the one queue backend the tests did not exercise."""
from __future__ import annotations

import inspect

import pytest

from app.jobs.redis_store import RedisJobStore
from app.jobs.sqlite_store import SqliteJobStore
from app.jobs.store import JobStore

CONTRACT = sorted(name for name, value in vars(JobStore).items()
                  if inspect.isfunction(value) and not name.startswith("_"))


def test_the_contract_lists_what_the_api_and_the_runner_call():
    assert {"reserve", "create", "get", "progress", "finish", "requeue", "cancel", "is_cancelled", "read_file",
            "write_file", "queue_depth", "position", "count_job", "job_counts"} <= set(CONTRACT)


@pytest.mark.parametrize("store", [SqliteJobStore, RedisJobStore], ids=lambda store: store.__name__)
@pytest.mark.parametrize("name", CONTRACT)
def test_store_implements_the_contract_method(store, name):
    method = getattr(store, name, None)
    assert inspect.isfunction(method), "%s has no method %s" % (store.__name__, name)
    assert inspect.signature(method) == inspect.signature(getattr(JobStore, name)), (
        "%s.%s%s differs from JobStore.%s%s" % (store.__name__, name, inspect.signature(method), name,
                                                inspect.signature(getattr(JobStore, name))))
