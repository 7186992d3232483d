"""`/metrics` in Prometheus text format: jobs by status and type, ready jobs per queue, agents' lag, handler durations.

The figures about jobs and agents are read from the store at scrape time, so every replica reports the
same totals; handler durations are observed by the runners of this process (`listener dev`, an embedded
platform) into the process's default registry.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from listener.models import JobStatus
from listener.platform.routes import OPERATORS, Call, Route

__all__ = ["HANDLER_SECONDS", "METRICS_ROUTE"]

HANDLER_SECONDS = Histogram("listener_handler_seconds", "Time handlers of this process took per event, by topic.",
                            ["topic"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600))


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def metrics(call: Call) -> web.Response:
    """Prometheus metrics: jobs by status and type, the event log's head, each agent's lag."""
    store = call.platform.store
    jobs = GaugeMetricFamily("listener_jobs", "Jobs in the store, by status and type.", labels=["status", "type"])
    for (status, type_), count in sorted((await store.count_jobs()).items()):
        jobs.add_metric([status, type_], count)
    head = await store.head()
    log = GaugeMetricFamily("listener_event_log_head", "The seq of the newest event.", value=head)
    lag = GaugeMetricFamily("listener_agent_lag_events", "Events an agent has not finished yet.", labels=["agent"])
    for name, seq in sorted((await store.cursors()).items()):
        lag.add_metric([name], max(head - seq, 0))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([jobs, log, lag, *await _ready(call)]))
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def _ready(call: Call) -> list[Metric]:
    """Per job type (`type:operation`): how many jobs are ready (the queue's depth) and how long the first has waited.

    The depth is a covering scan of jobs_type_operation_status; the age one step into an index per type with
    ready jobs (store/queues.py), so a scrape does not read the jobs themselves.
    """
    store, now = call.platform.store, call.platform.clock.now()
    depth = GaugeMetricFamily("listener_ready_jobs", "Jobs ready and not yet claimed, by type:operation.",
                              labels=["job"])
    age = GaugeMetricFamily("listener_ready_oldest_seconds",
                            "Seconds since the ready job first in its queue became ready, by type:operation.",
                            labels=["job"])
    for job, counts in sorted((await store.queue_counts()).items()):
        ready = counts.get(JobStatus.READY, 0)
        depth.add_metric([job], ready)
        first = await store.first_ready(job) if ready else None
        age.add_metric([job], max(0.0, (now - first[0].updated_at).total_seconds()) if first else 0.0)
    return [depth, age]


METRICS_ROUTE = Route("GET", "/metrics", metrics,
                      "Prometheus metrics: jobs by status and type, agents' lag, handler durations.", "system",
                      response=str, roles=OPERATORS, prefixed=False)
