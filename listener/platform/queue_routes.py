"""The REST routes of queues and workers (service: queues.py), in the one route table of routes.py.

Queue figures and workers are for operators (admins and agents), as job settings are to change: a
member would learn from them how many jobs others have. `GET /queues/unheard` is for everyone and
answers only about the caller's own jobs (another member's id is left out, as if it did not exist),
so a member's page can say that no worker is listening for the job they started.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from listener.models import Model
from listener.platform.queues import Queue, QueueService, QueueSummary, Scope, Unheard, Worker
from listener.platform.routes import OPERATORS, Call, route

__all__ = ["QueueList", "UnheardList", "UnheardQuery", "WorkerList"]

MAX_UNHEARD_IDS = 100


class QueueList(Model):
    items: list[QueueSummary]
    scope: Scope = "server"
    """Workers are this server's (replicas each know their own); counts are the store's."""


class WorkerList(Model):
    items: list[Worker]
    head: int
    """The seq of the newest event, which each worker's lag counts from."""
    scope: Scope = "server"


class UnheardQuery(Model):
    job_id: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]],
                      Field(min_length=1, max_length=MAX_UNHEARD_IDS)]
    """The jobs to ask about (repeated, or comma-separated), at most 100."""


class UnheardList(Model):
    items: list[Unheard]
    scope: Scope = "server"


def _service(call: Call) -> QueueService:
    platform = call.platform
    return QueueService(platform.store, platform.workers, platform.clock)


@route("GET", "/queues", tag="queues", response=QueueList, roles=OPERATORS)
async def list_queues(call: Call) -> QueueList:
    """Every job type's queue: jobs by status, the oldest ready job's age, its limits and whether a worker listens."""
    return QueueList(items=await _service(call).queues())


@route("GET", "/queues/unheard", tag="queues", query=UnheardQuery, response=UnheardList)
async def unheard_jobs(call: Call) -> UnheardList:
    """Which of these ready jobs no worker on this server is listening for (members: of their own jobs)."""
    ids = list(dict.fromkeys(call.query.job_id))
    jobs = await call.platform.store.jobs_with_context(ids)
    if call.is_member:
        jobs = [(job, context) for job, context in jobs if job.created_by == call.user.name]
    return UnheardList(items=await _service(call).unheard(jobs))


@route("GET", "/queues/{job}", tag="queues", response=Queue, roles=OPERATORS)
async def get_queue(call: Call) -> Queue:
    """One job type's queue (`type:operation`): counts, oldest ready, ended per minute this hour, limits, workers."""
    return await _service(call).get(call.param("job"))


@route("GET", "/workers", tag="queues", response=WorkerList, roles=OPERATORS)
async def list_workers(call: Call) -> WorkerList:
    """The workers connected to this server: agents' sockets and in-process listeners, their lag and jobs in hand."""
    service = _service(call)
    workers = await service.workers()
    return WorkerList(items=workers, head=await call.platform.store.head())
