"""listener.testing: the harness users test their listeners with."""

from __future__ import annotations

from pathlib import Path

import pytest

from listener import Event, JobStatus, Listener, Outcome
from listener.testing import run_listener
from plugins.job_handler import Tick, job_handler

pytestmark = pytest.mark.anyio


def build() -> Listener:
    listener = Listener("app")

    @listener.on("job:ready", job="workbook:export")
    async def export(event: Event) -> None:
        job_id = event.context.job_id or ""
        await event.api.jobs.ack(job_id, progress=10)
        page = await event.api.records.get(await first_sheet(event))
        await event.api.jobs.complete(job_id, outcome=Outcome(message=f"Exported {page.total} records."))

    async def first_sheet(event: Event) -> str:
        workbook = await event.api.workbooks.get(event.context.workbook_id or "")
        return workbook.sheets[0].id

    @listener.on("commit:created", sheet="contacts")
    async def on_commit(event: Event) -> None:
        await event.api.jobs.create(type="workbook", operation="dedupe", source=event.context.workbook_id)

    async def dedupe(event: Event, tick: Tick) -> Outcome:
        await tick(50, "Halfway")
        return Outcome(message="No duplicates.")

    return listener.use(job_handler("workbook:dedupe", dedupe))


async def test_trigger_an_action_and_follow_a_job_a_listener_creates(tmp_path: Path) -> None:
    async with run_listener(build(), path=tmp_path / "t.db") as h:
        wb = await h.api.workbooks.create(name="W", sheets=[{"name": "Contacts"}],
                                          actions=[{"operation": "export", "label": "Export"}])
        job = await h.trigger(wb.id, "export")
        assert job.status == JobStatus.COMPLETE and job.outcome is not None
        assert job.outcome.message == "Exported 0 records."

        await h.insert(wb.sheets[0].id, [{"email": "a@example.com"}])
        dedupe = await h.next_job("workbook:dedupe")
        assert dedupe.status is JobStatus.COMPLETE and dedupe.outcome is not None
        assert dedupe.outcome.message == "No duplicates."
        ticks = [e.payload["info"] for e in await h.events("job:updated", job_id=dedupe.id)]
        assert ticks == ["Accepted", "Halfway"]
        assert [e.topic for e in await h.events("commit:*")] == ["commit:created"]


async def test_the_default_database_is_temporary() -> None:
    async with run_listener(Listener()) as h:
        path = h.platform.store.path  # type: ignore[attr-defined]
        assert path.exists()
    assert not path.exists()
