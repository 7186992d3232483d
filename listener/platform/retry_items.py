"""Retry only what failed: a new job of the same type for exactly the items a job's error log names.

The part of JobService (jobs.py) behind `jobs.retry_failed_items`; it holds no state of its own. A 100,000-row
import with 12 bad rows logs those 12 (`jobs.log_error(item=...)`); after the fix, its retry runs those 12:
the new job's input is the first's with `items` set to them, and its `retryOf` names the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from listener.errors import Conflict
from listener.models import Job, JobCreate
from listener.platform.store.base import Idempotency, Store

__all__ = ["MAX_RETRY_ITEMS", "RetryItemsMixin"]

MAX_RETRY_ITEMS = 10_000
"""The most items one retry runs: a job that failed on more is retried whole (`jobs.retry`)."""

_ERRORS_PAGE = 1_000
# What the new job keeps of the first: what it does and how; not its schedule, predecessors or trigger.
_KEPT = ("type", "operation", "source", "destination", "mode", "managed", "metadata", "retry", "timeout_seconds",
         "lease_seconds", "max_lease_expirations")


class RetryItemsMixin:
    """jobs.retry_failed_items."""

    _store: Store

    if TYPE_CHECKING:
        async def get(self, job_id: str) -> Job: ...
        async def _create(self, spec: JobCreate, idempotency: Idempotency | None, *,
                          retry_of: str | None = None) -> Job: ...

    async def retry_failed_items(self, job_id: str) -> Job:
        """Create a job of the same type for the items the job's error log names, and return it.

        The job must have ended. The new job's input is the first's with `items` set to the distinct items
        that failed (in the order first logged; entries without an item are not items), `retryOf` is the
        first's id, and it starts as any new job does. Conflict when the log names no item, or more than
        MAX_RETRY_ITEMS.
        """
        job = await self.get(job_id)
        if not job.status.is_terminal:
            raise Conflict(f"Job {job_id} ({job.job}) is {job.status.value}: its failed items can be retried once "
                           "it has ended.", details={"jobId": job_id, "status": job.status.value,
                                                     "move": "retry_failed_items"})
        items: dict[str, None] = {}
        offset = 0
        while True:
            page, total = await self._store.job_errors(job_id, _ERRORS_PAGE, offset)
            items.update((e.item, None) for e in page if e.item is not None)
            offset += len(page)
            if len(items) > MAX_RETRY_ITEMS:
                raise Conflict(f"Job {job_id} failed on more than {MAX_RETRY_ITEMS:,} items: retry it whole instead.",
                               details={"jobId": job_id, "move": "retry_failed_items"})
            if not page or offset >= total:
                break
        if not items:
            raise Conflict(f"Job {job_id} has no failed items to retry: its error log names none.",
                           details={"jobId": job_id, "move": "retry_failed_items"})
        fields: dict[str, Any] = {name: getattr(job, name) for name in _KEPT}
        spec = JobCreate.model_validate({**fields, "input": {**job.input, "items": list(items)}})
        return await self._create(spec, None, retry_of=job.id)
