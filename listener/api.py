"""The Api protocol handlers call: one interface, an in-process and an HTTP transport.

A handler gets `event.api` and cannot tell which transport it has, so the same
listener runs embedded, in tests and as a remote worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from listener.models import (
    Action,
    Commit,
    Document,
    Event,
    File,
    Job,
    JobBulkResult,
    JobCounts,
    JobFilter,
    JobItemError,
    JobSettings,
    JobStatus,
    JobTrigger,
    JobType,
    Outcome,
    Page,
    Record,
    RetryPolicy,
    Sheet,
    Space,
    Workbook,
)
from listener.schedules import SchedulesApi
from listener.snapshots import SnapshotsApi
from listener.webhooks import WebhooksApi

__all__ = [
    "ActionsApi",
    "Api",
    "DocumentsApi",
    "EventsApi",
    "FilesApi",
    "JobsApi",
    "RecordsApi",
    "SheetsApi",
    "SpacesApi",
    "WorkbooksApi",
]


class JobsApi(Protocol):
    async def create(
        self,
        *,
        type: JobType | str,
        operation: str,
        source: str | None = None,
        destination: str | None = None,
        trigger: JobTrigger | str = JobTrigger.IMMEDIATE,
        mode: str = "foreground",
        managed: bool = False,
        info: str | None = None,
        metadata: dict[str, Any] | None = None,
        input: dict[str, Any] | None = None,
        retry: RetryPolicy | dict[str, Any] | None = None,
        timeout_seconds: int | None = None,
        lease_seconds: int | None = None,
        max_lease_expirations: int | None = None,
        run_at: datetime | None = None,
        predecessor_ids: Sequence[str] | None = None,
        dedupe_key: str | None = None,
        debounce_seconds: float | None = None,
        priority: int | None = None,
        concurrency_key: str | None = None,
    ) -> Job: ...
    async def get(self, job_id: str) -> Job: ...
    async def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        type: JobType | str | Sequence[JobType | str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        parent_id: str | None = None,
        is_part: bool | None = None,
        search: str | None = None,
        metadata: Mapping[str, Any] | Sequence[str] | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Job]: ...
    async def counts(
        self,
        *,
        type: str | Sequence[str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        is_part: bool | None = None,
    ) -> JobCounts: ...
    async def bulk(
        self,
        action: str,
        *,
        ids: Sequence[str] | None = None,
        filter: JobFilter | dict[str, Any] | None = None,
        expected_count: int | None = None,
    ) -> JobBulkResult: ...
    async def execute(self, job_id: str) -> Job: ...
    async def ack(
        self,
        job_id: str,
        *,
        info: str | None = ...,
        progress: int | None = ...,
        estimated_completion_at: datetime | None = ...,
        retry: RetryPolicy | dict[str, Any] | None = ...,
        lease_seconds: int = ...,
    ) -> Job: ...
    async def update(
        self,
        job_id: str,
        *,
        info: str | None = ...,
        progress: int | None = ...,
        estimated_completion_at: datetime | None = ...,
        metadata: dict[str, Any] | None = ...,
        processed: int = ...,
        total: int = ...,
        attempt: int | None = None,
    ) -> Job: ...
    async def heartbeat(self, job_id: str, *, attempt: int | None = None) -> Job: ...
    async def checkpoint(self, job_id: str, state: dict[str, Any], *, attempt: int | None = None) -> Job: ...
    async def complete(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = ...,
        attempt: int | None = None,
    ) -> Job: ...
    async def fail(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = ...,
        error: str | None = None,
        kind: str = "error",
        retryable: bool = False,
        attempt: int | None = None,
    ) -> Job: ...
    async def retry(self, job_id: str) -> Job: ...
    async def retry_failed_items(self, job_id: str) -> Job: ...
    async def set_priority(self, job_id: str, priority: int) -> Job: ...
    async def log_errors(self, job_id: str, errors: Sequence[JobItemError | dict[str, Any]]) -> int: ...
    async def log_error(self, job_id: str, *, message: str, item: str | None = None) -> int: ...
    async def errors(self, job_id: str, *, limit: int = 100, offset: int = 0) -> Page[JobItemError]: ...
    async def cancel(self, job_id: str, *, info: str | None = ...) -> Job: ...
    async def acknowledge_outcome(self, job_id: str) -> Job: ...
    async def delete(self, job_id: str) -> None: ...
    async def wait(self, job_id: str, timeout: float | None = None) -> Job: ...
    async def split(
        self,
        job_id: str,
        *,
        parts: int | Sequence[dict[str, Any]],
        run_in_parallel: bool = True,
        settle: str = "listener",
        attempt: int | None = None,
    ) -> Job: ...
    async def configure(
        self,
        job: str,
        *,
        max_running: int | None = None,
        starts_per_second: float | None = None,
        timeout_seconds: int | None = None,
        max_lease_expirations: int | None = None,
        priority: int | None = None,
        max_running_per_key: int | None = None,
        starts_per_second_per_key: float | None = None,
    ) -> JobSettings: ...
    async def settings(self) -> Sequence[JobSettings]: ...
    async def attach_file(self, job_id: str, file_id: str, *, role: str) -> Job: ...
    async def write_data(self, job_id: str, rows: Sequence[dict[str, Any]]) -> int: ...
    async def errors_csv(self, job_id: str) -> bytes | AsyncIterator[bytes]:
        """The job's error log as CSV (item, message, time): chunks in-process, the bytes over HTTP;
        `files.upload` takes either."""
        ...


class SpacesApi(Protocol):
    async def create(self, *, name: str, namespace: str | None = None,
                     metadata: dict[str, Any] | None = None) -> Space: ...
    async def get(self, space_id: str) -> Space: ...
    async def list(self) -> list[Space]: ...


class WorkbooksApi(Protocol):
    async def create(
        self,
        *,
        name: str,
        sheets: Sequence[dict[str, Any]] = (),
        actions: Sequence[dict[str, Any] | Action] = (),
        space_id: str | None = None,
        labels: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Workbook: ...
    async def get(self, workbook_id: str) -> Workbook: ...
    async def list(self, *, space_id: str | None = None) -> list[Workbook]: ...
    async def delete(self, workbook_id: str) -> None: ...


class SheetsApi(Protocol):
    async def get(self, sheet_id: str) -> Sheet: ...
    async def list(self, *, workbook_id: str) -> list[Sheet]: ...


class RecordsApi(Protocol):
    async def insert(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> list[Record]: ...
    async def update(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> Commit: ...
    async def delete(self, sheet_id: str, ids: Sequence[str]) -> Commit: ...
    async def get(self, sheet_id: str, *, limit: int = 100, offset: int = 0) -> Page[Record]: ...


class DocumentsApi(Protocol):
    async def create(
        self,
        *,
        title: str,
        body: str = "",
        space_id: str | None = None,
        actions: Sequence[dict[str, Any] | Action] = (),
    ) -> Document: ...
    async def get(self, document_id: str) -> Document: ...
    async def list(self, *, space_id: str | None = None) -> list[Document]: ...
    async def update(
        self,
        document_id: str,
        *,
        title: str = ...,
        body: str = ...,
        actions: Sequence[dict[str, Any] | Action] = ...,
    ) -> Document: ...
    async def delete(self, document_id: str) -> None: ...


class ActionsApi(Protocol):
    async def trigger(self, source_id: str, operation: str, *, input: dict[str, Any] | None = None) -> Job: ...


class EventsApi(Protocol):
    async def list(self, *, after: int = 0, limit: int = 100, job_id: str | None = None) -> list[Event]: ...


class FilesApi(Protocol):
    async def upload(
        self,
        data: bytes | AsyncIterable[bytes] | Path,
        *,
        name: str | None = None,
        mime_type: str | None = None,
        space_id: str | None = None,
        actions: Sequence[dict[str, Any] | Action] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> File: ...
    async def get(self, file_id: str) -> File: ...
    async def list(self, *, space_id: str | None = None) -> list[File]: ...
    async def read(self, file_id: str) -> bytes: ...
    def stream(self, file_id: str) -> AsyncIterator[bytes]: ...
    async def delete(self, file_id: str) -> None: ...


class Api(Protocol):
    """Everything a handler can do on the platform."""

    @property
    def jobs(self) -> JobsApi: ...
    @property
    def spaces(self) -> SpacesApi: ...
    @property
    def workbooks(self) -> WorkbooksApi: ...
    @property
    def sheets(self) -> SheetsApi: ...
    @property
    def records(self) -> RecordsApi: ...
    @property
    def snapshots(self) -> SnapshotsApi:
        """Sheet snapshots: create, list, get, records, restore, delete (listener/snapshots.py)."""
        ...
    @property
    def documents(self) -> DocumentsApi: ...
    @property
    def actions(self) -> ActionsApi: ...
    @property
    def events(self) -> EventsApi: ...
    @property
    def files(self) -> FilesApi: ...
    @property
    def schedules(self) -> SchedulesApi:
        """Cron schedules that create jobs: create, list, get, update, pause, resume, delete (listener/schedules.py)."""
        ...
    @property
    def webhooks(self) -> WebhooksApi:
        """Webhooks (admins only over HTTP): create, list, get, pause, resume, delete, deliveries
        (listener/webhooks.py)."""
        ...
