"""System jobs (managed: true) run by the platform itself, on both backends.

file:extract (good and broken rows, resume from a checkpoint, files it cannot read), sheet:export
(a download round trip, formulas defused, a member downloads their own export), sheet:deleteRecords,
sheet:findReplace, the max-items limit refusing up front, their events, a listener reacting to them,
and a ready job picked up by a platform that starts later.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from listener import Event, Invalid, Job, JobStatus, Listener, Platform
from listener.models import NextDownload, Sheet
from listener.platform import system
from listener.platform.domains import RecordService
from tests.conftest import ManualClock, Server
from tests.platform.test_reliability import until
from tests.platform.test_server import API, assert_error, call

pytestmark = pytest.mark.anyio

FIELDS = [
    {"key": "name"},
    {"key": "email", "label": "E-mail"},
    {"key": "age", "type": "number"},
    {"key": "vip", "type": "boolean"},
]


async def contacts(platform: Platform, records: Sequence[dict[str, Any]] = ()) -> Sheet:
    space = await platform.api.spaces.create(name="Canvassing")
    workbook = await platform.api.workbooks.create(name="Voters", space_id=space.id,
                                                   sheets=[{"name": "Contacts", "slug": "contacts", "fields": FIELDS}])
    sheet = workbook.sheets[0]
    if records:
        await platform.api.records.insert(sheet.id, list(records))
    return sheet


async def run(platform: Platform, type: str, operation: str, source: str, input: dict[str, Any] | None = None,
              api: Any = None) -> Job:
    """Create a managed job and wait for the platform's own agent to finish it."""
    job = await (api or platform.api).jobs.create(type=type, operation=operation, source=source, input=input,
                                                  managed=True)
    return await platform.api.jobs.wait(job.id, timeout=20)


async def values(platform: Platform, sheet_id: str) -> list[dict[str, Any]]:
    page = await platform.api.records.get(sheet_id, limit=1000)
    return [r.values for r in page.items]


async def errors(platform: Platform, job_id: str) -> list[tuple[str | None, str]]:
    page = await platform.api.jobs.errors(job_id, limit=1000)
    return [(e.item, e.message) for e in page.items]


async def upload(platform: Platform, text: str | bytes, name: str = "voters.csv") -> str:
    data = text.encode() if isinstance(text, str) else text
    return (await platform.api.files.upload(data, name=name, mime_type="text/csv")).id


# -- file:extract -------------------------------------------------------------------------------


VOTERS = (
    "Name,e-mail,AGE,vip,precinct\r\n"          # by key, by label, by key in another case; one unknown column
    "Ada Lovelace,ada@example.com,36,yes,P1\r\n"
    "Bob,bob@example.com,abc,no,P2\r\n"         # row 3: not a number
    "Cy,cy@example.com,40\r\n"                  # row 4: three cells of five
    "\r\n"                                      # row 5: blank, skipped
    '"Grace ""Amazing"" Hopper","grace@example.com",85,TRUE,P3\r\n'
    '"Line\nBreak",lb@example.com,,maybe,P4\r\n'   # row 7: not true or false (its quoted cell spans two lines)
    "Edsger,ed@example.com,72.5,,P5\r\n"
    '"Unclosed,x@example.com,1,no,P6\r\n'       # row 9: a quote never closed swallows the rest of the file
)


async def test_extract_imports_good_rows_and_logs_each_broken_one(platform: Platform) -> None:
    sheet = await contacts(platform)
    file_id = await upload(platform, VOTERS)

    job = await run(platform, "file", "extract", file_id, {"sheetId": sheet.id})

    assert job.status == JobStatus.COMPLETE, job.error
    assert job.outcome is not None
    assert job.outcome.message == ("Imported 3 of 7 rows; 4 rows had errors. Ignored 1 column (see the error log).")
    assert (job.processed, job.total, job.progress) == (7, 7, 100)
    assert await values(platform, sheet.id) == [
        {"name": "Ada Lovelace", "email": "ada@example.com", "age": 36, "vip": True},
        {"name": 'Grace "Amazing" Hopper', "email": "grace@example.com", "age": 85, "vip": True},
        {"name": "Edsger", "email": "ed@example.com", "age": 72.5, "vip": None},
    ]
    assert await errors(platform, job.id) == [
        ("column 5", "Column 5 ('precinct') is not a field of sheet 'contacts' (its fields: name, email, age, vip); "
                     "its cells were not imported."),
        ("row 3", "Row 3: age: 'abc' is not a number."),
        ("row 4", "Row 4: has 3 cells; the header has 5."),
        ("row 7", "Row 7: vip: 'maybe' is not true or false."),
        ("row 9", "Row 9: a quoted cell is not closed before the end of the file."),
    ]


async def test_extract_inserts_in_batches_and_reports_rows_processed(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system, "BATCH_SIZE", 2)
    sheet = await contacts(platform)
    file_id = await upload(platform, "name,age\n" + "".join(f"P{i},{i}\n" for i in range(1, 6)))

    job = await run(platform, "file", "extract", file_id, {"sheetId": sheet.id})

    assert job.status == JobStatus.COMPLETE and job.outcome is not None
    assert job.outcome.message == "Imported 5 of 5 rows."
    assert await values(platform, sheet.id) == [{"name": f"P{i}", "age": i} for i in range(1, 6)]
    events = await platform.api.events.list(job_id=job.id, limit=1000)
    progress = [(e.payload["processed"], e.payload["progress"]) for e in events
                if e.topic == "job:updated" and e.payload["processed"] is not None]
    assert progress == [(2, 40), (4, 80), (5, 100)]
    commits = [e for e in await platform.api.events.list(limit=1000) if e.topic == "commit:created"]
    assert [e.payload["inserted"] for e in commits] == [2, 2, 1]
    assert {e.context.actor_id for e in commits} == {"agent:system"}


async def test_extract_resumes_after_a_failed_attempt_from_its_checkpoint(
    platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system, "BATCH_SIZE", 2)
    sheet = await contacts(platform)
    file_id = await upload(platform, "name,age\nA,1\nB,x\nC,3\nD,4\nE,5\n")
    inserted: list[list[str]] = []
    insert = RecordService.insert
    broken = [True]

    async def flaky(self: RecordService, sheet_id: str, records: Sequence[dict[str, Any]]) -> Any:
        if len(inserted) == 1 and broken:  # the second batch: the database goes away
            broken.clear()
            raise ConnectionError("The database went away.")
        inserted.append([r["name"] for r in records])
        return await insert(self, sheet_id, records)

    monkeypatch.setattr(RecordService, "insert", flaky)
    job = await platform.api.jobs.create(type="file", operation="extract", source=file_id,
                                         input={"sheetId": sheet.id}, managed=True)
    scheduled = await until(platform, job.id, JobStatus.SCHEDULED, timeout=20)
    assert scheduled.error is not None and scheduled.error.message == "The database went away."
    assert scheduled.checkpoint == {"next_row": 4, "imported": 1, "failed": 1, "done": 2}
    assert await values(platform, sheet.id) == [{"name": "A", "age": 1}]

    clock.advance(60)
    await platform.scheduler.sweep()
    job = await platform.api.jobs.wait(job.id, timeout=20)

    assert job.status == JobStatus.COMPLETE and job.attempt == 2
    assert job.outcome is not None and job.outcome.message == "Imported 4 of 5 rows; 1 row had errors."
    assert inserted == [["A"], ["C", "D"], ["E"]], "the second attempt starts after the checkpointed batch"
    assert [v["name"] for v in await values(platform, sheet.id)] == ["A", "C", "D", "E"]
    assert await errors(platform, job.id) == [("row 3", "Row 3: age: 'x' is not a number.")]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "The file voters.csv is empty: a CSV file to extract starts with a header row."),
    (b"name,age\nZo\xe9,3\n", "voters.csv: The file is not UTF-8 text: invalid continuation byte near byte 11."),
    (b"given,family\nAda,Lovelace\n", "None of the columns of voters.csv (given, family) is a field of sheet "
                                      "'contacts' (its fields: name, email, age, vip)."),
], ids=["empty", "not-utf8", "no-field"])
async def test_extract_fails_when_nothing_can_be_read(platform: Platform, data: bytes, message: str) -> None:
    sheet = await contacts(platform)
    job = await run(platform, "file", "extract", await upload(platform, data), {"sheetId": sheet.id})

    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.message == message and not job.error.retryable
    assert await values(platform, sheet.id) == []
    assert await errors(platform, job.id) == []


async def test_extract_needs_a_sheet(platform: Platform) -> None:
    file_id = await upload(platform, "name\nAda\n")

    missing = await run(platform, "file", "extract", file_id)
    unknown = await run(platform, "file", "extract", file_id, {"sheetId": "sh_nope"})

    assert missing.status == JobStatus.FAILED and missing.error is not None
    assert missing.error.kind == "invalid_input" and "sheetId" in missing.error.message
    assert unknown.status == JobStatus.FAILED and unknown.error is not None
    assert unknown.error.message == "sheetId: sheet sh_nope does not exist."


# -- sheet:export -------------------------------------------------------------------------------


TRICKY = [
    {"name": "=HYPERLINK(\"http://evil.example\")", "email": "a@example.com", "age": -3, "vip": True},
    {"name": "Smith, \"Jo\"\nJr.", "email": "+1@example.com", "age": 2.5, "vip": False},
    {"name": "@Plain", "email": None, "age": None},
]


async def test_export_writes_a_csv_file_and_offers_it_for_download(platform: Platform) -> None:
    sheet = await contacts(platform, TRICKY)

    job = await run(platform, "sheet", "export", sheet.id)

    assert job.status == JobStatus.COMPLETE, job.error
    assert job.outcome is not None and job.outcome.message == "Exported 3 records of Contacts to Contacts.csv."
    [output] = job.files
    assert (output.role, output.name) == ("output", "Contacts.csv")
    assert isinstance(job.outcome.next, NextDownload)
    assert job.outcome.next.model_dump(by_alias=False) == {
        "type": "download", "url": f"/api/v1/files/{output.file_id}/content", "file_name": "Contacts.csv",
        "label": "Download CSV"}
    file = await platform.api.files.get(output.file_id)
    workbook = await platform.api.workbooks.get(sheet.workbook_id)
    assert (file.mime_type, file.space_id) == ("text/csv", workbook.space_id)

    rows = list(csv.reader(io.StringIO((await platform.api.files.read(file.id)).decode(), newline="")))
    assert rows == [
        ["name", "email", "age", "vip"],
        ["'=HYPERLINK(\"http://evil.example\")", "a@example.com", "'-3", "true"],
        ["Smith, \"Jo\"\nJr.", "'+1@example.com", "2.5", "false"],
        ["'@Plain", "", "", ""],
    ]


async def test_an_export_extracted_into_another_sheet_round_trips(platform: Platform) -> None:
    plain = [{"name": "Ada", "email": "ada@example.com", "age": 36, "vip": True},
             {"name": "Line\nBreak, \"quoted\"", "email": None, "age": 1.5, "vip": False}]
    sheet = await contacts(platform, plain)
    exported = await run(platform, "sheet", "export", sheet.id)
    target = await contacts(platform)

    extracted = await run(platform, "file", "extract", exported.files[0].file_id, {"sheetId": target.id})

    assert extracted.status == JobStatus.COMPLETE and extracted.outcome is not None
    assert extracted.outcome.message == "Imported 2 of 2 rows."
    assert await values(platform, target.id) == plain


async def test_a_member_downloads_the_export_they_started_and_cannot_extract_anothers_file(server: Server) -> None:
    platform = server.platform
    sheet = await contacts(platform, TRICKY)
    alice, bob = await server.token("alice"), await server.token("bob")

    status, body = await call(server, "POST", f"{API}/jobs", alice,
                              json={"type": "sheet", "operation": "export", "source": sheet.id, "managed": True})
    assert status == 202 and body["managed"] is True
    job = await platform.api.jobs.wait(body["id"], timeout=20)
    assert job.status == JobStatus.COMPLETE and job.outcome is not None and job.outcome.next is not None
    url = job.outcome.next.model_dump()["url"]

    status, text = await call(server, "GET", url, alice)
    assert status == 200 and text.startswith("name,email,age,vip\r\n\"'=HYPERLINK")
    status, body = await call(server, "GET", url, bob)
    assert_error(status, body, 404, "not_found")

    alices_file = await platform.api.as_actor("alice").files.upload(b"name\nAda\n", name="mine.csv")
    status, body = await call(server, "POST", f"{API}/jobs", bob,
                              json={"type": "file", "operation": "extract", "source": alices_file.id,
                                    "managed": True, "input": {"sheetId": sheet.id}})
    assert_error(status, body, 404, "not_found")
    assert (await platform.api.jobs.list(operation="extract")).total == 0


# -- sheet:deleteRecords and sheet:findReplace --------------------------------------------------


async def test_delete_records_deletes_the_given_ones_then_all_in_batches(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system, "BATCH_SIZE", 2)
    sheet = await contacts(platform, [{"name": f"P{i}"} for i in range(7)])
    ids = [r.id for r in (await platform.api.records.get(sheet.id)).items]

    some = await run(platform, "sheet", "deleteRecords", sheet.id, {"ids": [ids[0], ids[2], "rc_gone", ids[2]]})

    assert some.status == JobStatus.COMPLETE and some.outcome is not None
    assert some.outcome.message == "Deleted 2 of 3 records; 1 was not in the sheet."
    assert await errors(platform, some.id) == [("record rc_gone", "Record rc_gone is not in sheet 'contacts'.")]
    assert [v["name"] for v in await values(platform, sheet.id)] == ["P1", "P3", "P4", "P5", "P6"]

    everything = await run(platform, "sheet", "deleteRecords", sheet.id)

    assert everything.status == JobStatus.COMPLETE and everything.outcome is not None
    assert everything.outcome.message == "Deleted 5 records of Contacts."
    assert await values(platform, sheet.id) == []
    commits = [e for e in await platform.api.events.list(limit=1000) if e.topic == "commit:created"]
    assert [e.payload["deleted"] for e in commits if e.payload["deleted"]] == [2, 2, 2, 1]


async def test_find_replace_changes_the_text_of_one_field(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "BATCH_SIZE", 2)
    sheet = await contacts(platform, [
        {"name": "Ada", "email": "ada@old.example"},
        {"name": "old.example fan", "email": "fan@new.example"},
        {"name": "Bob", "email": None, "age": 3},
        {"name": "Cy", "email": "cy@old.example.old.example"},
        {"name": "Di"},
    ])

    job = await run(platform, "sheet", "findReplace", sheet.id,
                    {"fieldKey": "email", "find": "old.example", "replace": "new.example"})

    assert job.status == JobStatus.COMPLETE and job.outcome is not None
    assert job.outcome.message == "Replaced 'old.example' with 'new.example' in 'email': 2 of 5 records changed."
    assert await values(platform, sheet.id) == [
        {"name": "Ada", "email": "ada@new.example"},
        {"name": "old.example fan", "email": "fan@new.example"},
        {"name": "Bob", "email": None, "age": 3},
        {"name": "Cy", "email": "cy@new.example.new.example"},
        {"name": "Di"},
    ]
    assert (job.processed, job.total) == (5, 5)

    unknown = await run(platform, "sheet", "findReplace", sheet.id, {"fieldKey": "mail", "find": "a", "replace": "b"})
    assert unknown.status == JobStatus.FAILED and unknown.error is not None
    assert unknown.error.message == ("fieldKey: sheet 'contacts' has no field 'mail' "
                                     "(its fields: name, email, age, vip).")
    no_find = await run(platform, "sheet", "findReplace", sheet.id, {"fieldKey": "name", "replace": "b"})
    assert no_find.error is not None and no_find.error.kind == "invalid_input" and "find" in no_find.error.message


# -- the limit ----------------------------------------------------------------------------------


@pytest.fixture
async def limited(db_url: str, clock: ManualClock) -> AsyncIterator[Platform]:
    """A platform whose system jobs may process at most 3 items."""
    async with Platform.open(db_url, clock=clock, sweep_interval=None, max_items=3) as p:
        yield p


async def test_a_job_over_the_item_limit_fails_up_front_and_changes_nothing(limited: Platform) -> None:
    platform = limited
    four = [{"name": f"P{i}", "email": "p@old.example"} for i in range(4)]
    sheet = await contacts(platform, four)
    ids = [r.id for r in (await platform.api.records.get(sheet.id)).items]
    target = await contacts(platform)
    file_id = await upload(platform, "name\nA\nB\nC\nD\n", name="four.csv")
    files_before = len(await platform.api.files.list())

    jobs = [
        await run(platform, "file", "extract", file_id, {"sheetId": target.id}),
        await run(platform, "sheet", "export", sheet.id),
        await run(platform, "sheet", "deleteRecords", sheet.id),
        await run(platform, "sheet", "deleteRecords", sheet.id, {"ids": ids}),
        await run(platform, "sheet", "findReplace", sheet.id, {"fieldKey": "email", "find": "old", "replace": "new"}),
    ]

    assert [job.status for job in jobs] == [JobStatus.FAILED] * 5
    assert [job.error.message if job.error else None for job in jobs] == [
        "The file four.csv has 4 rows; a job may process at most 3.",
        "Sheet Contacts has 4 records; a job may process at most 3.",
        "Sheet Contacts has 4 records; a job may process at most 3.",
        "The job has 4 record ids; a job may process at most 3.",
        "Sheet Contacts has 4 records; a job may process at most 3.",
    ]
    assert all(job.attempt == 1 and job.error and not job.error.retryable for job in jobs)
    assert await values(platform, sheet.id) == four
    assert await values(platform, target.id) == []
    assert len(await platform.api.files.list()) == files_before
    for job in jobs:
        assert await errors(platform, job.id) == []

    three = await run(platform, "sheet", "deleteRecords", sheet.id, {"ids": ids[:3]})
    assert three.status == JobStatus.COMPLETE, "at the limit is allowed"


async def test_the_default_limit_is_100_000_rows(platform: Platform) -> None:
    sheet = await contacts(platform)
    file_id = await upload(platform, "name\n" + "x\n" * 100_001, name="statewide.csv")

    job = await run(platform, "file", "extract", file_id, {"sheetId": sheet.id})

    assert job.status == JobStatus.FAILED and job.error is not None
    assert job.error.message == "The file statewide.csv has 100,001 rows; a job may process at most 100,000."
    assert await values(platform, sheet.id) == []


# -- events and listeners -----------------------------------------------------------------------


async def test_a_system_job_emits_the_lifecycle_events_with_managed_true(platform: Platform) -> None:
    sheet = await contacts(platform, [{"name": "Ada"}])

    job = await run(platform, "sheet", "export", sheet.id, api=platform.api.as_actor("alice"))

    events = await platform.api.events.list(job_id=job.id, limit=1000)
    topics = [e.topic for e in events]
    assert topics[:3] == ["job:created", "job:ready", "job:updated"] and topics[-1] == "job:completed"
    assert all(e.payload["managed"] is True for e in events)
    assert all(e.context.job == "sheet:export" and e.context.sheet_id == sheet.id for e in events)
    assert events[0].context.actor_id == "alice"
    assert {e.context.actor_id for e in events[2:]} == {"agent:system"}
    assert events[2].payload["status"] == "executing" and events[-1].payload["status"] == "complete"
    assert job.created_by == "alice"


async def test_a_listener_reacts_to_a_system_jobs_completion(platform: Platform) -> None:
    sheet = await contacts(platform, [{"name": "Ada", "email": "ada@example.com"}])
    seen: list[Event] = []
    downloaded: list[bytes] = []
    done = anyio.Event()
    listener = Listener("mailer")

    @listener.on("job:completed", {"managed": True, "job": "sheet:export"})
    async def send(event: Event) -> None:
        seen.append(event)
        job = await event.api.jobs.get(event.context.job_id or "")
        downloaded.append(await event.api.files.read(job.files[0].file_id))
        done.set()

    @listener.on("job:completed", {"managed": False})
    async def unmanaged(event: Event) -> None:
        seen.append(event)

    async with platform.running(listener):
        job = await run(platform, "sheet", "export", sheet.id)
        with anyio.fail_after(10):
            await done.wait()

    assert [e.context.job_id for e in seen] == [job.id]
    assert downloaded == [b"name,email,age,vip\r\nAda,ada@example.com,,\r\n"]


async def test_a_managed_job_made_ready_while_no_agent_ran_is_picked_up_when_one_starts(
    db_url: str, clock: ManualClock
) -> None:
    async with Platform.open(db_url, clock=clock, sweep_interval=None, system_jobs=False) as platform:
        sheet = await contacts(platform, [{"name": "Ada"}, {"name": "Bob"}])
        job = await platform.api.jobs.create(type="sheet", operation="deleteRecords", source=sheet.id, managed=True)
        assert (await platform.api.jobs.get(job.id)).status == JobStatus.READY

    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        done = await platform.api.jobs.wait(job.id, timeout=20)
        assert done.status == JobStatus.COMPLETE and done.outcome is not None
        assert done.outcome.message == "Deleted 2 records of Contacts."
        assert await values(platform, sheet.id) == []


async def test_the_limit_and_the_agent_are_options_of_platform_open(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="max_items: must be at least 1, not 0"):
        async with Platform.open(f"sqlite:///{tmp_path / 'x.db'}", max_items=0):
            pass
