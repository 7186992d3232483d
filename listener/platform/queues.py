"""Queues and workers: for each job type, its jobs by status, its oldest ready job, what ended per minute,
its limits, and the workers that listen for it; and which ready jobs no worker is listening for.

A job type's queue is its `type:operation` (workbook:export). Every figure comes from an indexed read
(store/queues.py); who listens comes from this process's workers (workers.py), asked the very question the
event stream asks of a job:ready: for a type with ready jobs, of the job:ready of the first of them; for a
job, of its own. A type with none ready is asked of a job:ready that names only the type, so a worker whose
handler also filters on, say, the sheet is not counted there until such a job is ready.

Workers are known per server process. Replicas on one PostgreSQL database share the store, so the counts,
ages and rates are the same on every replica, but each knows only the workers connected to it: behind a
load balancer, a replica with no worker of its own says that no worker is listening (the answers say
`"scope": "server"`). Point the operators' page at a replica the workers connect to, or run them all
against each replica they may use (`listener run --url a,b` connects to one at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from listener import topics
from listener.jobcalls import _job_name
from listener.models import Event, EventContext, Job, JobSettings, JobStatus, Model, parse
from listener.platform.moves import job_payload
from listener.platform.store.base import Store
from listener.platform.workers import Connection, Workers
from listener.types import Clock

__all__ = ["MINUTES", "Queue", "QueueJob", "QueueService", "QueueSummary", "Throughput", "Unheard", "Worker"]

MINUTES = 60
"""The chart's span: completed and failed per minute over the last hour."""
_IN_HAND = 100
"""Jobs listed per worker at most (handed to it, executing in its hands)."""

Scope = Literal["server"]


class QueueJob(Model):
    """A job in a worker's hands: its id and its type:operation."""

    id: str
    job: str


class Worker(Model):
    """A worker connected to this server: an agent's event-stream socket or an in-process listener."""

    id: str
    kind: Literal["stream", "in-process"]
    agent: str
    user: str | None
    topics: list[str]
    filter: Any
    ready: Any
    """The filters of its job:ready handlers as it sent them (null: it did not say, so its topics decide)."""
    shared: bool
    """Whether it shares its agent's job:ready events with the agent's other sockets (`listener run` does)."""
    connected_at: datetime
    address: str | None
    position: int | None
    """The seq up to which it handled the events it was sent (or its agent's stored cursor)."""
    lag: int | None
    """Events between the log's head and its position."""
    handed: list[QueueJob]
    """Ready jobs handed to it (a sharing socket) whose job:ready it has not acked past."""
    executing: list[QueueJob]
    """Executing jobs it acked over its socket."""


class QueueSummary(Model):
    """One job type's queue at a glance."""

    job: str
    type: str
    operation: str
    counts: dict[JobStatus, int]
    """Jobs in each status (every status, zeros too)."""
    ready: int
    executing: int
    oldest_ready_at: datetime | None
    """When the ready job first in the queue became ready."""
    oldest_ready_seconds: float | None
    listening: int
    """Workers on this server that its ready jobs reach (see the module's note on replicas)."""
    unheard: bool
    """It has ready jobs and no worker on this server listens for them."""
    settings: JobSettings | None
    scope: Scope = "server"


class Throughput(Model):
    """Jobs that ended per minute, oldest minute first; the last minute is the one under way."""

    since: datetime
    minute_seconds: int = 60
    completed: list[int]
    failed: list[int]


class Queue(QueueSummary):
    """One job type's queue: its summary, what ended per minute over the last hour, and who listens."""

    throughput: Throughput
    workers: list[Worker]


class Unheard(Model):
    """A ready job that no worker on this server is listening for."""

    job_id: str
    job: str
    message: str


class _JobName(Model):
    job: Annotated[str, AfterValidator(_job_name)]


def job_name(value: str) -> str:
    """`value` if it names a job type (`type:operation`), else Invalid naming the field `job`."""
    return parse(_JobName, {"job": value}, what="path").job


def ready_event(job: Job, context: EventContext) -> Event:
    """The job:ready a worker would be sent for `job` (as announce_waiting asks of it)."""
    return Event.trusted(id="", seq=0, topic=topics.JOB_READY, context=context, payload=job_payload(job),
                         created_at=job.updated_at)


def _type_event(job: str) -> Event:
    kind, _, operation = job.partition(":")
    context = EventContext(job=job, domain=kind, operation=operation)
    return Event.trusted(id="", seq=0, topic=topics.JOB_READY, context=context,
                         payload={"status": "ready", "isPart": False, "managed": False}, created_at=datetime.min)


class QueueService:
    """The queues and workers of one platform, as this server sees them."""

    def __init__(self, store: Store, workers: Workers, clock: Clock) -> None:
        self._store, self._workers, self._clock = store, workers, clock

    async def queues(self) -> list[QueueSummary]:
        """Every job type that has jobs or settings, by name."""
        counts = await self._store.queue_counts()
        settings = await self._store.job_settings()
        return [(await self._summary(job, counts.get(job, {}), settings.get(job)))[0]
                for job in sorted({*counts, *settings})]

    async def get(self, job: str) -> Queue:
        """One type's queue (`type:operation`); a type with no jobs has zeros, not a 404."""
        job = job_name(job)
        counts = (await self._store.queue_counts(job)).get(job, {})
        summary, listening = await self._summary(job, counts, (await self._store.job_settings()).get(job))
        return Queue(**dict(summary), throughput=await self.throughput(job),
                     workers=await self._describe(listening))

    async def throughput(self, job: str) -> Throughput:
        """Completed and failed jobs of `job` per minute over the last hour (minutes as the clock has them)."""
        now = self._clock.now()
        since = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
        ended = await self._store.finished_per_minute(job, since)

        def series(status: JobStatus) -> list[int]:
            return [ended.get((minute, status), 0) for minute in range(MINUTES)]

        return Throughput(since=since, completed=series(JobStatus.COMPLETE), failed=series(JobStatus.FAILED))

    async def workers(self) -> list[Worker]:
        """Every worker connected to this server."""
        return await self._describe(list(self._workers))

    async def unheard(self, jobs: Sequence[tuple[Job, EventContext]]) -> list[Unheard]:
        """Of these jobs, the ready ones that no worker on this server would be sent."""
        return [Unheard(job_id=job.id, job=job.job, message=f"No worker is listening for {job.job}")
                for job, context in jobs
                if job.status is JobStatus.READY and not self._workers.taking(ready_event(job, context))]

    async def _summary(self, job: str, counts: dict[JobStatus, int],
                       settings: JobSettings | None) -> tuple[QueueSummary, list[Connection]]:
        kind, _, operation = job.partition(":")
        ready = counts.get(JobStatus.READY, 0)
        first = await self._store.first_ready(job) if ready else None
        listening = self._workers.taking(ready_event(*first) if first else _type_event(job))
        since = first[0].updated_at if first else None
        age = max(0.0, (self._clock.now() - since).total_seconds()) if since is not None else None
        summary = QueueSummary(job=job, type=kind, operation=operation,
                               counts={status: counts.get(status, 0) for status in JobStatus},
                               ready=ready, executing=counts.get(JobStatus.EXECUTING, 0), oldest_ready_at=since,
                               oldest_ready_seconds=age, listening=len(listening),
                               unheard=first is not None and not listening, settings=settings)
        return summary, listening

    async def _describe(self, connections: Sequence[Connection]) -> list[Worker]:
        head = await self._store.head()
        cursors = await self._store.cursors() if connections else {}
        held = {job_id for c in connections for job_id in [*c.handed()[:_IN_HAND], *sorted(c.acked)[:_IN_HAND]]}
        jobs = {job.id: job for job, _ in await self._store.jobs_with_context(sorted(held))}
        workers = []
        for c in connections:
            for job_id in sorted(c.acked)[:_IN_HAND]:
                if job_id not in jobs or jobs[job_id].status is not JobStatus.EXECUTING:
                    c.acked.discard(job_id)  # ended meanwhile (a lease expired, a cancel): no longer in its hands
            position = c.position()
            if position is None and c.cursor is not None:
                position = cursors.get(c.cursor)
            workers.append(Worker(
                id=c.id, kind=c.kind, agent=c.agent, user=c.user, topics=c.topics, filter=c.filter, ready=c.ready,
                shared=c.shared, connected_at=c.connected_at, address=c.address, position=position,
                lag=None if position is None else max(0, head - position),
                handed=[QueueJob(id=j, job=jobs[j].job) for j in c.handed()[:_IN_HAND]
                        if j in jobs and jobs[j].status is JobStatus.READY],
                executing=[QueueJob(id=j, job=jobs[j].job) for j in sorted(c.acked)[:_IN_HAND]]))
        return workers
