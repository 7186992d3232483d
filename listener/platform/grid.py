"""The jobs grid's REST routes: the counts of its status tabs and bulk moves (in the same table as routes.py).

GET /jobs itself (its search, metadata and sort) stays in routes.py with the other job routes.
"""

from __future__ import annotations

from listener.models import JobBulk, JobBulkResult, JobCounts, JobCountsQuery
from listener.platform.auth import Role
from listener.platform.routes import Call, route

__all__ = ["bulk_jobs", "count_jobs"]


@route("GET", "/job-counts", tag="jobs", query=JobCountsQuery, response=JobCounts)
async def count_jobs(call: Call) -> JobCounts:
    """How many jobs there are in each status, from the status indexes (members count only their own)."""
    q: JobCountsQuery = call.query
    if call.is_member:
        q = q.model_copy(update={"created_by": call.user.name})
    return await call.api.jobs.counts_of(q)


@route("POST", "/jobs/bulk", tag="jobs", body=JobBulk, response=JobBulkResult, roles=frozenset({Role.ADMIN}))
async def bulk_jobs(call: Call) -> JobBulkResult:
    """Cancel, retry or delete many jobs (by ids, or by the listing's filters and the count expected), at most
    1,000, each through its own move; says which changed and which were refused, and why."""
    return await call.api.jobs.bulk_from(call.body)
