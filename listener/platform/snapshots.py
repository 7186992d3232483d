"""Sheet snapshots: save a copy of a sheet's records, compare the sheet with it, put it back.

A snapshot is an object of kind "snapshot" whose parent is its sheet; its records are copied by the
store in the same transaction that adds it, so it holds exactly what the sheet held at one commit.
A restore is a commit like any other (commit:created, then snapshot:restored), so listeners and the
web page see the sheet change as they would for an edit.
"""

from __future__ import annotations

from typing import Any

from listener import topics
from listener.models import Commit, EventContext, Record, new_id
from listener.platform.domains import Domains, SheetService
from listener.platform.store.base import NewEvent, RecordCounts
from listener.snapshots import (
    RecordChange,
    Snapshot,
    SnapshotChanges,
    SnapshotCreate,
    SnapshotQuery,
    SnapshotRecord,
    SnapshotRecords,
    SnapshotRecordsQuery,
    SnapshotsApi,
    SnapshotSummary,
)

__all__ = ["SnapshotService", "compare"]

_ALL = 2**62  # "every row" as a LIMIT both stores take


def compare(saved: list[Record], current: list[Record]) -> tuple[list[SnapshotRecord], SnapshotChanges]:
    """The snapshot's records marked against the sheet's records now, then those added since, and the counts."""
    now = {r.id: r for r in current}
    rows: list[SnapshotRecord] = []
    counts = {change: 0 for change in RecordChange}
    for record in saved:
        there = now.get(record.id)
        if there is None:
            change = RecordChange.REMOVED
        elif there.values != record.values:
            change = RecordChange.CHANGED
        else:
            change = RecordChange.UNCHANGED
        counts[change] += 1
        rows.append(SnapshotRecord.model_construct(
            id=record.id, values=record.values, current=None if there is None else there.values, change=change,
            created_at=record.created_at, updated_at=record.updated_at))
    ids = {r.id for r in saved}
    for record in current:
        if record.id not in ids:
            counts[RecordChange.ADDED] += 1
            rows.append(SnapshotRecord.model_construct(
                id=record.id, values=record.values, current=record.values, change=RecordChange.ADDED,
                created_at=record.created_at, updated_at=record.updated_at))
    return rows, SnapshotChanges(**{change.value: n for change, n in counts.items()})


class SnapshotService(SnapshotsApi):
    """`api.snapshots` in-process (the signatures are SnapshotsApi's)."""

    def __init__(self, domains: Domains, sheets: SheetService) -> None:
        self._d = domains
        self._sheets = sheets

    async def _context(self, snapshot: Snapshot) -> EventContext:
        ctx = await self._d.context_of(snapshot.sheet_id)
        return ctx.model_copy(update={"snapshot_id": snapshot.id})

    async def _create(self, spec: SnapshotCreate) -> Snapshot:
        sheet = await self._sheets.get(spec.sheet_id)
        snapshot_id = new_id("ss")
        ctx = (await self._d.context_of(sheet.id)).model_copy(update={"snapshot_id": snapshot_id})
        now = self._d.clock.now()

        def make(count: int) -> tuple[dict[str, Any], list[NewEvent]]:
            snapshot = Snapshot(id=snapshot_id, sheet_id=sheet.id, workbook_id=sheet.workbook_id, label=spec.label,
                                summary=SnapshotSummary(records=count), created_by=self._d.actor, created_at=now)
            doc = snapshot.model_dump(mode="json")
            return doc, [self._d.event(topics.SNAPSHOT_CREATED, ctx, doc)]

        stored, _ = await self._d.store.create_snapshot(snapshot_id, sheet.id, make)
        return Snapshot.model_validate(stored.doc)

    async def _list(self, query: SnapshotQuery) -> list[Snapshot]:
        await self._sheets.get(query.sheet_id)  # NotFound for a sheet that is not there, not an empty list
        return [Snapshot.model_validate(o.doc) for o in await self._d.store.list_objects("snapshot", query.sheet_id)]

    async def _get(self, snapshot_id: str) -> Snapshot:
        return Snapshot.model_validate((await self._d.store.get_object(snapshot_id, "snapshot")).doc)

    async def _records(self, snapshot_id: str, query: SnapshotRecordsQuery) -> SnapshotRecords:
        # The whole sheet is compared for every page: the counts and the added records need it. Two reads,
        # not one transaction: a commit between them shows on the next page as it would on a reload.
        snapshot = await self._get(snapshot_id)
        saved, _ = await self._d.store.list_snapshot_records(snapshot.id, snapshot.sheet_id, _ALL, 0)
        current, _ = await self._d.store.list_records(snapshot.sheet_id, _ALL, 0)
        rows, changes = compare(saved, current)
        return SnapshotRecords(items=rows[query.offset:query.offset + query.limit], total=len(rows),
                               limit=query.limit, offset=query.offset, changes=changes)

    async def _restore(self, snapshot_id: str) -> Commit:
        snapshot = await self._get(snapshot_id)
        sheet = await self._sheets.get(snapshot.sheet_id)
        ctx = await self._context(snapshot)
        commit_id = new_id("cm")
        now = self._d.clock.now()
        ctx = ctx.model_copy(update={"commit_id": commit_id})
        about = snapshot.model_dump(mode="json")

        def commit_of(counts: RecordCounts) -> Commit:
            return Commit(id=commit_id, sheet_id=sheet.id, workbook_id=sheet.workbook_id, inserted=counts.inserted,
                          updated=counts.updated, deleted=counts.deleted, created_by=self._d.actor, created_at=now)

        def make(counts: RecordCounts) -> list[NewEvent]:
            commit = commit_of(counts).model_dump(mode="json")
            return [self._d.event(topics.COMMIT_CREATED, ctx, commit),
                    self._d.event(topics.SNAPSHOT_RESTORED, ctx, {**about, "commit": commit})]

        counts, _ = await self._d.store.restore_snapshot(snapshot.id, sheet.id, now, make)
        return commit_of(counts)

    async def _delete(self, snapshot_id: str) -> None:
        snapshot = await self._get(snapshot_id)
        event = self._d.event(topics.SNAPSHOT_DELETED, await self._context(snapshot), snapshot.model_dump(mode="json"))
        await self._d.store.delete_snapshot(snapshot.id, [event])
