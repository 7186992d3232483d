"""Sheet snapshots' wire models: a saved copy of a sheet's records, and how the sheet has moved on since.

A module of its own, as each concept of the wire models is (`job.py`, `events.py`, ...; `models.py`
gathers the others). A snapshot is taken with `api.snapshots.create(sheet_id, label=...)`,
read with `get` / `list` / `records`, and put back with `restore`, which changes the sheet through
an ordinary commit (commit:created), as any other change of its records does.
"""

from __future__ import annotations

import abc
import builtins
import enum
from datetime import datetime
from typing import Any

from pydantic import Field

from listener.models import MAX_INT64, Commit, Model, parse

__all__ = [
    "RecordChange",
    "Snapshot",
    "SnapshotChanges",
    "SnapshotCreate",
    "SnapshotQuery",
    "SnapshotRecord",
    "SnapshotRecords",
    "SnapshotRecordsQuery",
    "SnapshotSummary",
    "SnapshotsApi",
]


class SnapshotCreate(Model):
    """The arguments of `snapshots.create`: the sheet, and a label people will know it by."""

    sheet_id: str = Field(min_length=1, max_length=200)
    label: str | None = Field(None, min_length=1, max_length=500)


class SnapshotQuery(Model):
    """The query of `snapshots.list`: the sheet whose snapshots to list."""

    sheet_id: str = Field(min_length=1, max_length=200)


class SnapshotRecordsQuery(Model):
    """The paging of `snapshots.records`."""

    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT64)


class SnapshotSummary(Model):
    """What the snapshot holds."""

    records: int
    """How many records the sheet had when the snapshot was taken."""


class Snapshot(Model):
    """A saved copy of one sheet's records (Flatfile's snapshots), with an id prefixed `ss_`."""

    id: str
    sheet_id: str
    workbook_id: str
    label: str | None = None
    summary: SnapshotSummary
    created_by: str | None = None
    created_at: datetime


class RecordChange(enum.StrEnum):
    """How a record of the sheet stands now against the snapshot."""

    UNCHANGED = "unchanged"
    CHANGED = "changed"
    """In both, with other values now (`values` are the snapshot's, `current` the sheet's)."""
    REMOVED = "removed"
    """In the snapshot, no longer in the sheet: a restore brings it back."""
    ADDED = "added"
    """In the sheet, not in the snapshot (`values` are the sheet's): a restore deletes it."""


class SnapshotRecord(Model):
    """One row of a snapshot's listing: a record as the snapshot has it, marked with what changed since."""

    id: str
    values: dict[str, Any]
    current: dict[str, Any] | None = None
    """The record's values in the sheet now; None when it was removed since."""
    change: RecordChange
    created_at: datetime
    updated_at: datetime


class SnapshotChanges(Model):
    """How many records of the sheet changed since the snapshot, by kind of change."""

    unchanged: int = 0
    changed: int = 0
    removed: int = 0
    added: int = 0


class SnapshotRecords(Model):
    """A page of a snapshot's records (then those added to the sheet since), and the counts of every change."""

    items: list[SnapshotRecord]
    total: int
    limit: int
    offset: int
    changes: SnapshotChanges


class SnapshotsApi(abc.ABC):
    """`api.snapshots` on either transport: each call's signature is written here once.

    The in-process service (listener/platform/snapshots.py) and the HTTP client (listener/client.py)
    implement the underscored methods, which get the arguments already validated.
    """

    async def create(self, sheet_id: str, *, label: str | None = None) -> Snapshot:
        """Save a copy of the sheet's records as they are now (snapshot:created).

        Raises NotFound for an unknown sheet and Invalid for an empty label.
        """
        return await self._create(parse(SnapshotCreate, {"sheet_id": sheet_id, "label": label}, what="snapshot"))

    async def list(self, *, sheet_id: str) -> list[Snapshot]:
        """The sheet's snapshots, oldest first (NotFound for an unknown sheet)."""
        return await self._list(parse(SnapshotQuery, {"sheet_id": sheet_id}, what="query"))

    async def get(self, snapshot_id: str) -> Snapshot:
        """One snapshot (NotFound once it is deleted)."""
        return await self._get(snapshot_id)

    async def records(self, snapshot_id: str, *, limit: int = 100, offset: int = 0) -> SnapshotRecords:
        """A page of the snapshot's records, each marked with how the sheet has it now.

        The snapshot's records come first, in the order the sheet had them, marked unchanged,
        changed or removed; then the records added to the sheet since, marked added. `changes`
        counts each kind over the whole sheet.
        """
        return await self._records(snapshot_id, parse(SnapshotRecordsQuery, {"limit": limit, "offset": offset},
                                                      what="query"))

    async def restore(self, snapshot_id: str) -> Commit:
        """Put the sheet's records back as the snapshot has them, in one commit (commit:created, then
        snapshot:restored): records added since are deleted, removed ones come back with their ids,
        changed ones get their values back. Returns the commit, with what it inserted, updated and deleted.
        """
        return await self._restore(snapshot_id)

    async def delete(self, snapshot_id: str) -> None:
        """Delete a snapshot and its copy of the records (snapshot:deleted); the sheet is not touched."""
        await self._delete(snapshot_id)

    @abc.abstractmethod
    async def _create(self, spec: SnapshotCreate) -> Snapshot: ...

    @abc.abstractmethod
    async def _list(self, query: SnapshotQuery) -> builtins.list[Snapshot]: ...

    @abc.abstractmethod
    async def _get(self, snapshot_id: str) -> Snapshot: ...

    @abc.abstractmethod
    async def _records(self, snapshot_id: str, query: SnapshotRecordsQuery) -> SnapshotRecords: ...

    @abc.abstractmethod
    async def _restore(self, snapshot_id: str) -> Commit: ...

    @abc.abstractmethod
    async def _delete(self, snapshot_id: str) -> None: ...
