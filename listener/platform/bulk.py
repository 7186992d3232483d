"""Bulk moves (`jobs.bulk`): cancel, retry or delete many jobs in one call, each through its own state machine.

The part of JobService (jobs.py) that an operator's console uses to act on many jobs at once; it holds no
state of its own. A bulk move names its jobs by id, or by the listing's filters together with the number of
jobs the caller saw match them (the confirmation: a filter that matches another number now is refused, as is
one that matches more than MAX_BULK). Each job then makes its own move (`cancel`, `retry`, `delete`), in its
own transaction with its own events, as if it had been asked alone; a job whose move is refused (a finished
job cannot be cancelled) is named in the answer with the code and message of its refusal, and the rest go on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from listener.errors import Conflict, Invalid, ListenerError
from listener.models import MAX_BULK, Job, JobBulk, JobBulkRefusal, JobBulkResult, JobFilter, parse
from listener.platform.listing import store_query
from listener.platform.store.base import Store

__all__ = ["BULK_CONCURRENCY", "BulkMixin"]

BULK_CONCURRENCY = 16
"""Moves of one bulk call under way at once: enough for the store's group commit to write several together."""


class BulkMixin:
    """jobs.bulk: one move for many jobs."""

    _store: Store

    if TYPE_CHECKING:
        async def cancel(self, job_id: str, *, info: str | None = ...) -> Job: ...
        async def retry(self, job_id: str) -> Job: ...
        async def delete(self, job_id: str) -> None: ...

    async def bulk(
        self,
        action: str,
        *,
        ids: Sequence[str] | None = None,
        filter: JobFilter | dict[str, Any] | None = None,
        expected_count: int | None = None,
    ) -> JobBulkResult:
        """Cancel, retry or delete many jobs: those of `ids`, or the (at most MAX_BULK) that `filter` matches.

        Args:
            action: `cancel`, `retry` or `delete`.
            ids: the jobs' ids (at most MAX_BULK).
            filter: the listing's filters (`status`, `type`, `search`, `metadata`, ...), instead of ids.
            expected_count: with a filter, how many jobs the caller expects it to match.

        Raises:
            Invalid: neither ids nor a filter, or both; a filter without `expected_count`; a filter matching more
                than MAX_BULK jobs.
            Conflict: the filter matches another number of jobs than `expected_count` (nothing was moved).

        Returns what changed and what was refused, job by job.
        """
        body = parse(JobBulk, {"action": action, "ids": None if ids is None else list(ids), "filter": filter,
                               "expected_count": expected_count}, what="bulk move")
        return await self.bulk_from(body)

    async def bulk_from(self, body: JobBulk) -> JobBulkResult:
        """`bulk` for a validated body."""
        ids = await self._bulk_ids(body)
        move = self._bulk_move(body.action)
        outcomes: list[ListenerError | None] = [None] * len(ids)
        limiter = anyio.CapacityLimiter(BULK_CONCURRENCY)

        async def one(index: int, job_id: str) -> None:
            async with limiter:
                try:
                    await move(job_id)
                except ListenerError as refused:
                    outcomes[index] = refused

        async with anyio.create_task_group() as tg:
            for index, job_id in enumerate(ids):
                tg.start_soon(one, index, job_id)
        changed = [job_id for job_id, error in zip(ids, outcomes, strict=True) if error is None]
        refused = [JobBulkRefusal(id=job_id, code=error.code, message=error.message)
                   for job_id, error in zip(ids, outcomes, strict=True) if error is not None]
        return JobBulkResult(action=body.action, matched=len(ids), changed=len(changed), changed_ids=changed,
                             refused=refused)

    def _bulk_move(self, action: str) -> Callable[[str], Awaitable[object]]:
        moves: dict[str, Callable[[str], Awaitable[object]]] = {
            "cancel": self.cancel, "retry": self.retry, "delete": self.delete}
        return moves[action]

    async def _bulk_ids(self, body: JobBulk) -> list[str]:
        """The jobs a bulk move is about, in order, once its confirmation holds."""
        if body.ids is not None and body.filter is not None:
            raise Invalid("filter: a bulk move names its jobs by ids or by a filter, not both.",
                          details=[{"field": "filter", "message": "given with ids"}])
        if body.ids is not None:
            if body.expected_count is not None:
                raise Invalid("expectedCount: goes with a filter; a bulk move by ids moves the jobs it names.",
                              details=[{"field": "expectedCount", "message": "given with ids"}])
            return list(dict.fromkeys(body.ids))
        if body.filter is None:
            raise Invalid("ids: a bulk move needs the ids of its jobs, or a filter and expectedCount.",
                          details=[{"field": "ids", "message": "missing"}])
        if body.expected_count is None:
            raise Invalid("expectedCount: a bulk move by filter needs the number of jobs you expect it to match "
                          "(the listing's total for these filters), as its confirmation.",
                          details=[{"field": "expectedCount", "message": "missing"}])
        ids, matched = await self._store.job_ids(store_query(body.filter, limit=MAX_BULK))
        if matched > MAX_BULK:
            raise Invalid(f"filter: {matched:,} jobs match it, and one bulk move takes at most {MAX_BULK:,}: narrow "
                          "the filters (by status, type, search, ...) and move them in parts.",
                          details=[{"field": "filter", "message": "too many jobs", "matched": matched,
                                    "max": MAX_BULK}])
        if matched != body.expected_count:
            raise Conflict(f"expectedCount: {body.expected_count:,} jobs were expected to match the filter, but "
                           f"{matched:,} do now; nothing was moved: count them again and confirm that number.",
                           details={"field": "expectedCount", "expected": body.expected_count, "matched": matched})
        return ids
