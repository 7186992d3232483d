"""What a job reports besides its state: its error log, its result rows (data.csv) and its attached files.

The part of JobService (jobs.py) that keeps them; it holds no state of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from listener import topics
from listener.errors import Conflict, Gone, Invalid, NotFound
from listener.models import EventContext, Job, JobAttach, JobData, JobErrors, JobFile, JobItemError, Page, parse
from listener.platform.csvs import csv_chunks
from listener.platform.moves import Move, S
from listener.platform.store.base import JobChange, NewEvent, Store, StoredObject
from listener.types import Clock

__all__ = ["JobDataMixin"]


class JobDataMixin:
    """jobs.log_errors / errors / errors_csv / attach_file / write_data / data / data_csv / prune_data."""

    _store: Store
    _clock: Clock
    data_ttl: timedelta

    if TYPE_CHECKING:
        async def get(self, job_id: str) -> Job: ...
        async def _move(self, job_id: str, move: Move) -> Job: ...

    async def log_errors(self, job_id: str, errors: Sequence[JobItemError | dict[str, Any]]) -> int:
        """Append entries (`item`, `message`) to the job's error log, which stays with it whatever its end."""
        body = parse(JobErrors, {"errors": list(errors)}, what="errors")
        now = self._clock.now()
        stamped: list[JobItemError] = [e if e.created_at else e.model_copy(update={"created_at": now})
                                       for e in body.errors]
        return await self._store.add_job_errors(job_id, stamped)

    async def log_error(self, job_id: str, *, message: str, item: str | None = None) -> int:
        """Append one entry to the job's error log; returns the log's length."""
        return await self.log_errors(job_id, [{"item": item, "message": message}])

    async def errors(self, job_id: str, *, limit: int = 100, offset: int = 0) -> Page[JobItemError]:
        """A page of the job's error log, oldest first."""
        await self._store.get_job(job_id)
        items, total = await self._store.job_errors(job_id, limit, offset)
        return Page[JobItemError](items=items, total=total, limit=limit, offset=offset)

    async def attach_file(self, job_id: str, file_id: str, *, role: str) -> Job:
        """Attach an uploaded file to the job as its `input`, `output` or `error_report` (in any state)."""
        body = parse(JobAttach, {"file_id": file_id, "role": role}, what="attachment")
        try:
            stored = await self._store.get_object(body.file_id, "file")
        except NotFound:
            raise Invalid(f"fileId: file {body.file_id} does not exist.",
                          details=[{"field": "fileId", "message": "unknown file"}]) from None
        attached = JobFile(file_id=body.file_id, role=body.role, name=stored.doc.get("name"))

        def apply(job: Job) -> dict[str, Any]:
            others = [f for f in job.files if (f.file_id, f.role) != (attached.file_id, attached.role)]
            return {"files": [*others, attached]}

        job = await self._move(job_id, Move("attach_file", set(S), topics.JOB_UPDATED, apply))
        if job.created_by and job.created_by != stored.doc.get("createdBy"):
            # Whoever started the job may download what is attached to it (an agent's error report).
            reader = job.created_by

            def share(obj: StoredObject) -> tuple[dict[str, Any] | None, list[NewEvent]]:
                readers = obj.doc.get("readers", [])
                return ({**obj.doc, "readers": [*readers, reader]} if reader not in readers else obj.doc), []

            await self._store.change_object(body.file_id, "file", share)
        return job

    async def write_data(self, job_id: str, rows: Sequence[dict[str, Any]]) -> int:
        """Append result rows to the job's data (its data.csv); returns how many rows it has."""
        body = parse(JobData, {"rows": list(rows)}, what="job data")
        now = self._clock.now()

        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status.is_terminal and job.finished_at and now >= job.finished_at + self.data_ttl:
                raise Conflict(f"The data of job {job.id} expired at {(job.finished_at + self.data_ttl).isoformat()}.",
                               details={"jobId": job.id, "status": job.status.value, "move": "write_data"})
            new = job.model_copy(update={"data_rows": job.data_rows + len(body.rows), "updated_at": now})
            return JobChange(new, [], data=body.rows)

        job, _ = await self._store.change_job(job_id, rule)
        assert job is not None
        return job.data_rows

    def data_expires_at(self, job: Job) -> datetime | None:
        """When the job's data stops being served: `data_ttl` after it ended (None while it runs)."""
        return job.finished_at + self.data_ttl if job.finished_at is not None else None

    async def data(self, job_id: str, *, page: int = 1000) -> tuple[Sequence[str], AsyncIterator[Sequence[Any]]]:
        """The job's data as columns (every key, in the order first seen) and rows of values.

        NotFound "no job data" if it wrote none, Gone once it has expired.
        """
        job = await self.get(job_id)
        if job.data_rows == 0:
            raise NotFound(f"Job {job.id} has no job data.", details={"jobId": job.id})
        expires = self.data_expires_at(job)
        if expires is not None and self._clock.now() >= expires:
            raise Gone(f"The data of job {job.id} expired at {expires.isoformat()}.",
                       details={"jobId": job.id, "expiredAt": expires.isoformat()})
        columns: dict[str, None] = {}
        after = 0
        while batch := await self._store.job_data(job.id, after, page):
            for _, row in batch:
                columns.update(dict.fromkeys(row))
            after = batch[-1][0]
        header = list(columns)

        async def rows() -> AsyncIterator[Sequence[Any]]:
            after = 0
            while batch := await self._store.job_data(job.id, after, page):
                for _, row in batch:
                    yield [row.get(c) for c in header]
                after = batch[-1][0]

        return header, rows()

    async def errors_csv(self, job_id: str) -> AsyncIterator[bytes]:
        """The job's error log as CSV: item, message, time (the error report)."""
        await self._store.get_job(job_id)

        async def rows() -> AsyncIterator[Sequence[Any]]:
            offset = 0
            while True:
                items, _ = await self._store.job_errors(job_id, 1000, offset)
                for e in items:
                    yield [e.item, e.message, e.created_at.isoformat() if e.created_at else ""]
                if len(items) < 1000:
                    return
                offset += len(items)

        return csv_chunks(["item", "message", "time"], rows())

    async def prune_data(self) -> int:
        """Delete the rows of job data that has expired (the scheduler does, hourly); returns how many."""
        return await self._store.prune_job_data(self._clock.now() - self.data_ttl)

    async def data_csv(self, job_id: str) -> AsyncIterator[bytes]:
        """The job's data as CSV (NotFound without data, Gone once expired)."""
        header, rows = await self.data(job_id)
        return csv_chunks(header, rows)
