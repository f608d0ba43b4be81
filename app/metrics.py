"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("toonify_requests_total", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=self.registry)
        self.stage_seconds = Histogram("toonify_stage_seconds", "Seconds per pipeline stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("toonify_queue_depth", "Jobs queued or running", registry=self.registry)
        self.jobs = Counter("toonify_jobs_total", "Finished jobs by outcome and failure reason",
                            ["outcome", "reason"], registry=self.registry)
        self.worker_jobs = Counter("toonify_worker_jobs_total", "Jobs finished per worker", ["worker", "outcome"],
                                   registry=self.registry)
        self.cache_hits = Counter("toonify_cache_hits_total", "Requests answered from an identical earlier job",
                                  registry=self.registry)
