"""Both stores' webhook outboxes (app.jobs.webhook_outbox), against SQLite and a real redis-server: a job's
state changes queue its subscribers' events, filtered, coalesced and leased alike."""
from __future__ import annotations

import time

import pytest

from app.jobs.job import NewJob
from app.jobs.redis_outbox import webhooks_key
from app.jobs.redis_store import job_key
from app.jobs.sqlite_store import SqliteJobStore
from app.jobs.webhook_outbox import LEASE_S, SEPARATOR, Webhook
from app.options import ToonifyOptions

ALL = frozenset({"start", "progress", "completed"})
LATER = 3600.0  # past every due time and lease of these tests


@pytest.fixture(autouse=True)
def every_progress(store):
    store.webhook_progress_interval_s = 0  # each new step may queue a progress call


def _claim(store, job_id: str) -> None:
    claimed = store.claim_next("w") if isinstance(store, SqliteJobStore) else store.claim(job_id, "w")
    assert claimed is not None and claimed.id == job_id


def _due(store, now: float):
    return sorted((d.job_id, d.url, d.event, d.attempts) for d in store.outbox.take_due(100, now))


def test_state_changes_queue_the_subscribed_events_once_each(store):
    store.create("j", NewJob("", ToonifyOptions(), "key", []), b"photo")
    store.subscribe("j", Webhook("http://a/", ALL))
    store.subscribe("j", Webhook("http://b/", frozenset({"completed"})))
    assert _due(store, time.time() + LATER) == []  # a queued job implies no event yet
    _claim(store, "j")
    store.progress("j", "projecting", 1, 9)
    store.progress("j", "projecting", 2, 9)  # while one progress is pending, later ones are absorbed
    store.progress("j", "rendering")  # a stage alone is no progress
    store.finish("j", "succeeded")
    store.finish("j", "succeeded")
    assert _due(store, time.time() + 1) == [("j", "http://a/", "completed", 0), ("j", "http://a/", "progress", 0),
                                            ("j", "http://a/", "start", 0), ("j", "http://b/", "completed", 0)]


def test_a_subscription_to_a_finished_or_cancelled_job_queues_completed_at_once(store):
    store.create("done", NewJob("", ToonifyOptions(), "key-done", []), b"photo")
    _claim(store, "done")
    store.finish("done", "failed", "boom", "it broke")
    store.subscribe("done", Webhook("http://late/", frozenset({"completed"})))
    store.subscribe("done", Webhook("http://late/", frozenset({"completed"})))  # the same URL again: one call
    store.create("gone", NewJob("", ToonifyOptions(), "key-gone", []), b"photo")
    store.subscribe("gone", Webhook("http://c/", frozenset({"start", "completed"})))
    store.cancel("gone")
    assert _due(store, time.time() + LATER) == [("done", "http://late/", "completed", 0),
                                                ("gone", "http://c/", "completed", 0)]


def test_a_taken_delivery_is_leased_retried_later_and_removed(store):
    store.create("j", NewJob("", ToonifyOptions(), "key", []), b"photo")
    store.subscribe("j", Webhook("http://a/", frozenset({"start"})))
    _claim(store, "j")
    now = time.time()
    (taken,) = store.outbox.take_due(10, now)
    assert store.outbox.take_due(10, now + LEASE_S - 1) == []  # leased: no other sender takes it
    store.outbox.renew([taken.id], now + 10)
    assert store.outbox.take_due(10, now + LEASE_S + 1) == []  # renewed
    assert [d.id for d in store.outbox.take_due(10, now + 10 + LEASE_S + 1)] == [taken.id]  # its sender died
    store.outbox.retry_at(taken, now + 100)
    assert store.outbox.take_due(10, now + 99) == []
    (again,) = store.outbox.take_due(10, now + 101)
    assert (again.id, again.attempts) == (taken.id, 1)
    store.outbox.remove(again)
    assert store.outbox.take_due(10, LATER + now) == []


def test_a_subscription_to_a_job_that_is_gone_keeps_nothing(store):
    store.subscribe("never", Webhook("http://a/", ALL))
    store.create("j", NewJob("", ToonifyOptions(), "key", []), b"photo")
    store.delete("j")
    store.subscribe("j", Webhook("http://a/", ALL))
    store.create("j", NewJob("", ToonifyOptions(), "key", []), b"photo")  # the same id again: no subscription left over
    _claim(store, "j")
    assert _due(store, time.time() + LATER) == []


def test_a_url_holding_the_id_separator_is_delivered_to_whole(store):
    """A delivery's id joins job, URL and event; a URL holding the separator (refused by the API, but a store
    may hold one from before) comes back whole, and the batch it is in is taken."""
    odd = "http://a/x" + SEPARATOR + "y" + SEPARATOR + "z"
    store.create("j", NewJob("", ToonifyOptions(), "key", []), b"photo")
    store.subscribe("j", Webhook(odd, frozenset({"start"})))
    store.subscribe("j", Webhook("http://b/", frozenset({"start"})))
    _claim(store, "j")
    assert _due(store, time.time()) == [("j", "http://a/x\x1fy\x1fz", "start", 0), ("j", "http://b/", "start", 0)]


def test_a_create_subscribes_its_webhook_with_the_job_and_to_the_job_that_answers_it(store):
    """The subscription is written by the create itself (one transaction: a crash cannot leave the job without
    it), also when an identical earlier job answers the create; the same URL twice keeps one set of events."""
    first = store.create("j", NewJob("", ToonifyOptions(), "key", [], Webhook("http://a/", ALL)), b"photo")
    again = store.create("k", NewJob("", ToonifyOptions(), "key", [], Webhook("http://b/", ALL)), b"photo")
    store.create("l", NewJob("", ToonifyOptions(), "key", [], Webhook("http://a/", ALL)), b"photo")
    assert first.id == again.id == "j"
    if not isinstance(store, SqliteJobStore):  # the events were merged, not appended
        assert store.redis.hget(webhooks_key(job_key("j")), "http://a/") == b",completed,progress,start,"
    _claim(store, "j")
    assert _due(store, time.time()) == [("j", "http://a/", "start", 0), ("j", "http://b/", "start", 0)]
