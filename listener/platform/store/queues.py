"""The reads behind the queues page (listener/platform/queues.py), written once for both backends.

Each is an indexed read whose cost does not grow with the jobs that are not asked about:

* `queue_counts`: jobs by type, operation and status, a covering scan of jobs_type_operation_status (for one
  type, a range of it);
* `first_ready`: the ready job of one type first in the queue's order (the order ready jobs are announced
  in), one step into jobs_type_operation_status (SQLite, whose index ends with the rowid) or jobs_status_type;
* `finished_per_minute`: one type's jobs that ended since a time, a range of jobs_type_finished read alone,
  counted per minute and status (at most 60 × 3 rows come back for an hour);
* `jobs_with_context`: a few jobs by id, with the context their events carry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from listener.models import EventContext, Job, JobStatus

__all__ = ["QueueReads"]

T = TypeVar("T")


class QueueReads:
    """The queue reads of a store; the backend provides `_minute` beside what StoreReads needs."""

    _position: ClassVar[str]
    _minute: ClassVar[str]
    """SQL for the minute a job ended in, counted from a time given as epoch seconds (its one `?`)."""

    if TYPE_CHECKING:
        async def _query(self, decode: Callable[..., T], *statements: tuple[str, Sequence[Any]]) -> T: ...

        @staticmethod
        def _instant(instant: datetime) -> Any: ...

    async def queue_counts(self, job: str | None = None) -> dict[str, dict[JobStatus, int]]:
        """How many jobs of each `type:operation` (or of `job` alone) are in each status."""
        sql = "SELECT type, operation, status, count(*) FROM jobs"
        params: tuple[str, ...] = ()
        if job is not None:
            kind, _, operation = job.partition(":")
            sql, params = sql + " WHERE type = ? AND operation = ?", (kind, operation)

        def counts(rows: list[Any]) -> dict[str, dict[JobStatus, int]]:
            found: dict[str, dict[JobStatus, int]] = {}
            for kind, operation, status, count in rows:
                found.setdefault(f"{kind}:{operation}", {})[JobStatus(status)] = int(count)
            return found

        return await self._query(counts, (sql + " GROUP BY type, operation, status", params))

    async def first_ready(self, job: str) -> tuple[Job, EventContext] | None:
        """The ready job of `job` (type:operation) first in the queue's order, with its context, or None."""
        kind, _, operation = job.partition(":")

        def first(rows: list[Any]) -> tuple[Job, EventContext] | None:
            if not rows:
                return None
            return Job.model_validate_json(rows[0][0]), EventContext.model_validate_json(rows[0][1])

        p = self._position
        return await self._query(first, (f"SELECT doc, ctx FROM jobs WHERE status = 'ready' AND type = ?"
                                         f" AND operation = ? ORDER BY {p} LIMIT 1", (kind, operation)))

    async def jobs_with_context(self, job_ids: Sequence[str]) -> list[tuple[Job, EventContext]]:
        """The jobs of these ids that exist (in no particular order), each with its context."""
        if not job_ids:
            return []

        def found(rows: list[Any]) -> list[tuple[Job, EventContext]]:
            return [(Job.model_validate_json(r[0]), EventContext.model_validate_json(r[1])) for r in rows]

        marks = ", ".join("?" * len(job_ids))
        return await self._query(found, (f"SELECT doc, ctx FROM jobs WHERE id IN ({marks})", list(job_ids)))

    async def finished_per_minute(self, job: str, since: datetime) -> dict[tuple[int, JobStatus], int]:
        """How many jobs of `job` ended in each minute from `since` on, by status: (minute, status) → count."""
        kind, _, operation = job.partition(":")

        def counts(rows: list[Any]) -> dict[tuple[int, JobStatus], int]:
            return {(int(r[0]), JobStatus(r[1])): int(r[2]) for r in rows}

        return await self._query(counts, (
            f"SELECT {self._minute}, status, count(*) FROM jobs WHERE type = ? AND operation = ?"
            " AND finished_at IS NOT NULL AND finished_at >= ? GROUP BY 1, 2",
            (since.timestamp(), kind, operation, self._instant(since))))
