"""Prometheus metrics of one service instance (its own registry, so tests can run several). Job counts are
read from the job store at scrape time, so the API reports the jobs every worker ran, on any machine."""
from __future__ import annotations

import logging
from collections import Counter as Tally
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric

from .jobs.job import JobCounts

STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
log = logging.getLogger("toonify")


class JobCountCollector:
    """toonify_jobs_total{outcome,reason} and toonify_worker_jobs_total{worker,outcome}, from the store."""

    def __init__(self, read_counts: Callable[[], JobCounts]) -> None:
        self.read_counts = read_counts

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.read_counts()
        except Exception:  # the store is unreachable: report the rest of the metrics
            log.exception("reading job counts failed")
            return
        by_outcome: Tally = Tally()
        by_worker: Tally = Tally()
        for (worker, outcome, reason), count in counts.items():
            by_outcome[(outcome, reason)] += count
            by_worker[(worker, outcome)] += count
        jobs = CounterMetricFamily("toonify_jobs", "Finished jobs by outcome and failure reason",
                                   labels=["outcome", "reason"])
        for labels, count in sorted(by_outcome.items()):
            jobs.add_metric(list(labels), count)
        workers = CounterMetricFamily("toonify_worker_jobs", "Jobs finished per worker", labels=["worker", "outcome"])
        for labels, count in sorted(by_worker.items()):
            workers.add_metric(list(labels), count)
        yield jobs
        yield workers


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("toonify_requests_total", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=self.registry)
        self.stage_seconds = Histogram("toonify_stage_seconds", "Seconds per pipeline stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("toonify_queue_depth", "Jobs queued or running", registry=self.registry)
        self.live_workers = Gauge("toonify_live_workers", "Workers that renewed their presence within its TTL",
                                  registry=self.registry)
        self.projection_steps = Counter("toonify_projection_steps_total", "Projection steps run (a batch's step "
                                        "counts once): re-renders and new styles add none", registry=self.registry)
        self.body_bytes_in_flight = Gauge("toonify_body_bytes_in_flight", "Request body bytes held now "
                                          "(TOONIFY_MAX_BODY_BYTES_IN_FLIGHT bounds them)", registry=self.registry)
        self.cache_hits = Counter("toonify_cache_hits_total", "Requests answered from an identical earlier job",
                                  registry=self.registry)

    def count_jobs_from(self, read_counts: Callable[[], JobCounts]) -> None:
        self.registry.register(JobCountCollector(read_counts))
