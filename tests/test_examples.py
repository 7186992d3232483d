"""The examples do what their stories say, on a real platform, and the demo runs them all."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from examples import STORIES, action_export, custom_job, failing_job, import_contacts, outcomes, ticking_job
from listener import Job, JobStatus, ListenerError, Platform
from listener.client import Client
from listener.demo import load_stories, run_demo
from listener.models import NextDownload, NextFiles
from listener.platform.domains import RecordService
from tests.conftest import ManualClock, Server
from tests.platform.test_reliability import until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]


async def _updates(platform: Platform, job_id: str) -> list[tuple[int, str | None]]:
    """(progress, info) of each job:updated event of a job, in order."""
    events = await platform.api.events.list(job_id=job_id, limit=1000)
    return [(e.payload["progress"], e.payload["info"]) for e in events if e.topic == "job:updated"]


def _buttons_files(job: Job) -> list[str]:
    """The ids of the platform files a job's `download` or `files` button points at, each attached to the job."""
    assert job.outcome is not None
    next = job.outcome.next
    if isinstance(next, NextDownload):
        match = re.fullmatch(r"/api/v1/files/([^/?]+)/content", next.url)
        assert match, f"{next.url} is not the download of a file stored on the platform"
        ids = [match.group(1)]
    else:
        assert isinstance(next, NextFiles), next
        ids = [ref.file_id for ref in next.files]
    assert set(ids) <= {f.file_id for f in job.files}, "attached, so whoever pressed the button may download it"
    return ids


async def _downloaded(client: Client, job: Job) -> list[bytes]:
    """What pressing the job's `download` or `files` button downloads, as the web page does it: a signed link
    to each file's content asked for as the client's user, then followed without the token."""
    data = []
    async with aiohttp.ClientSession() as browser:
        for file_id in _buttons_files(job):
            link = await client.request("POST", "/links", body={"path": f"/api/v1/files/{file_id}/content"})
            async with browser.get(client.urls[0] + link["url"]) as response:
                assert response.status == 200, await response.text()
                data.append(await response.read())
    return data


async def test_action_export_uploads_the_csv_and_its_button_downloads_it(server: Server) -> None:
    platform = server.platform
    async with platform.running(action_export.listener), \
            Client(server.url, token=await server.token("pat")) as member:
        [job_id] = await action_export.scenario(member)  # a member presses Export in the web page
        job = await member.jobs.wait(job_id, timeout=10)
        [csv_file] = await _downloaded(member, job)

    assert job.job == "workbook:export"
    assert job.status == JobStatus.COMPLETE
    assert job.progress == 100
    assert job.outcome is not None and job.outcome.acknowledge
    assert job.outcome.message == "Exported 3 records."
    [output] = job.files
    assert (output.role, output.name) == ("output", "October Report Workbook - Contacts.csv")
    assert job.outcome.next is not None
    assert job.outcome.next.model_dump(by_alias=False) == {
        "type": "download",
        "url": f"/api/v1/files/{output.file_id}/content",
        "file_name": "October Report Workbook - Contacts.csv",
        "label": "Download this file",
    }
    assert list(csv.DictReader(io.StringIO(csv_file.decode(), newline=""))) == action_export.CONTACTS
    name = "October Report Workbook - Contacts.csv"
    assert await _updates(platform, job.id) == [
        (10, "Starting submit job..."), (50, "Read 3 records"), (90, f"Uploaded {name}"),
        (90, f"Uploaded {name}")]  # the second: the file attached


async def test_action_export_fails_the_job_with_the_seeds_outcome(db_url: str, clock: ManualClock) -> None:
    # The platform refuses the upload: the export is larger than its files may be.
    async with Platform.open(db_url, clock=clock, sweep_interval=None, max_file_size=64) as platform, \
            platform.running(action_export.listener):
        [job_id] = await action_export.scenario(platform.api)
        job = await platform.api.jobs.wait(job_id, timeout=10)

    assert job.status == JobStatus.FAILED
    assert job.outcome is not None and job.outcome.message == "This Job failed." and job.outcome.acknowledge
    assert job.error is not None and job.error.message == "The file is larger than the limit of 64 bytes."
    assert job.files == []


async def test_action_export_fails_a_job_with_no_workbook_to_export(platform: Platform) -> None:
    # As `curl -X POST /api/v1/jobs -d '{"type": "workbook", "operation": "export"}'` makes one.
    async with platform.running(action_export.listener):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        job = await platform.api.jobs.wait(job.id, timeout=10)

    assert job.status == JobStatus.FAILED
    assert job.outcome is not None and job.outcome.message == "This Job failed."
    assert job.error is not None
    assert job.error.message == "There is no workbook to export: the job's source must be a workbook."


async def test_custom_job_is_started_by_a_commit_to_contacts_and_run(platform: Platform) -> None:
    async with platform.running(custom_job.listener):
        [job_id] = await custom_job.scenario(platform.api)
        job = await platform.api.jobs.wait(job_id, timeout=10)

    assert job.job == "workbook:myCustomOperation"
    assert job.status == JobStatus.COMPLETE
    assert job.created_by == "agent:custom-job"  # created by the listener, not by the scenario
    workbook = await platform.api.workbooks.get(job.source or "")
    assert workbook.name == "Sales Leads"
    assert job.outcome is not None
    assert job.outcome.message == "Successfully completed my custom operation: Sales Leads has 2 contacts."
    assert await _updates(platform, job.id) == [(10, "Starting my custom operation.")]


async def test_outcomes_offer_every_kind_of_next_button(server: Server) -> None:
    platform = server.platform
    async with platform.running(outcomes.listener), Client(server.url, token=await server.token("pat")) as member:
        ids = await outcomes.scenario(member)
        jobs = [await member.jobs.wait(job_id, timeout=10) for job_id in ids]
        by_operation = {job.operation: job for job in jobs[1:]}
        [template] = await _downloaded(member, by_operation["downloadTemplate"])
        contacts_csv, contacts_json = await _downloaded(member, by_operation["downloadFiles"])

    first_try, *pressed = jobs
    sheet = await platform.api.sheets.get(first_try.source or "")
    workbook = await platform.api.workbooks.get(sheet.workbook_id)

    assert first_try.job == "sheet:publish"
    assert first_try.status == JobStatus.FAILED
    assert first_try.error is not None and first_try.error.kind == "error"
    assert first_try.outcome is not None and first_try.outcome.next is not None
    assert first_try.error.message == first_try.outcome.message
    assert first_try.outcome.message.startswith("Nothing to publish yet")
    assert first_try.outcome.next.model_dump(by_alias=False) == {"type": "retry", "failed_items": False,
                                                                 "label": "Try again"}

    assert [job.status for job in pressed] == [JobStatus.COMPLETE] * len(outcomes.ACTIONS)
    assert by_operation["publish"].outcome is not None
    assert by_operation["publish"].outcome.message == "Published 3 contacts."
    nexts = {op: job.outcome.next.model_dump(by_alias=False) for op, job in by_operation.items()
             if job.outcome is not None and job.outcome.next is not None}
    assert {n["type"] for n in nexts.values()} | {"retry"} == {
        "id", "url", "download", "files", "snapshot", "view", "retry", "wait", "clear_filters"}

    assert nexts["openDownloads"] == {"type": "id", "id": workbook.space_id, "path": "files", "query": "mode=export",
                                      "label": "See all downloads"}
    assert nexts["openGuide"]["url"] == "https://flatfile.com/docs/core-concepts/jobs"
    assert nexts["downloadTemplate"]["file_name"] == "Contacts template.csv"
    assert template == b"first_name,middle_name,last_name,email,phone\r\n"
    assert by_operation["downloadFiles"].outcome is not None
    assert by_operation["downloadFiles"].outcome.message == (
        "The 3 contacts should download automatically, as CSV and as JSON.")
    assert list(csv.DictReader(io.StringIO(contacts_csv.decode(), newline=""))) == [
        {"first_name": "Ada", "middle_name": "", "last_name": "Lovelace", "email": "ada@example.com", "phone": ""},
        {"first_name": "Alan", "middle_name": "", "last_name": "Turing", "email": "alan@example.com", "phone": ""},
        {"first_name": "Grace", "middle_name": "", "last_name": "Hopper", "email": "grace@example.com", "phone": ""},
    ]
    assert json.loads(contacts_json) == [
        {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        {"first_name": "Alan", "last_name": "Turing", "email": "alan@example.com"},
        {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"},
    ]
    assert nexts["openSnapshot"]["sheet_id"] == sheet.id
    snapshot = await platform.api.snapshots.get(nexts["openSnapshot"]["snapshot_id"])  # a real one
    assert (snapshot.sheet_id, snapshot.label, snapshot.summary.records) == (sheet.id, "Before review", 3)
    assert nexts["hideEmptyColumns"] == {"type": "view", "sheet_id": sheet.id,
                                         "hidden_columns": ["middle_name", "phone"], "label": "Hide columns"}
    assert nexts["finishReview"] == {"type": "wait", "fade": False, "confetti": True, "label": None}
    assert nexts["showAll"] == {"type": "clear_filters", "sheet_id": sheet.id, "label": "Show all"}


async def test_failing_jobs_fail_with_the_exceptions_message_and_invalid_input(platform: Platform) -> None:
    async with platform.running(failing_job.listener):
        validate_id, invite_id, too_big_id = await failing_job.scenario(platform.api)
        validate = await platform.api.jobs.wait(validate_id, timeout=10)
        invite = await platform.api.jobs.wait(invite_id, timeout=10)
        too_big = await platform.api.jobs.wait(too_big_id, timeout=10)

    assert validate.status == JobStatus.FAILED
    assert validate.error is not None and validate.error.kind == "error"
    assert validate.error.message == "2 of 4 contacts have no email address: Alan Turing, Edsger Dijkstra."

    assert invite.status == JobStatus.COMPLETE
    assert invite.outcome is not None
    assert invite.outcome.message == "Prepared 4 invitations titled \"You're invited!\" in 2 batches."
    assert await _updates(platform, invite.id) == [(0, "Accepted"), (50, "Prepared batch 1 of 2"),
                                                    (100, "Prepared batch 2 of 2")]

    assert too_big.status == JobStatus.FAILED
    assert too_big.error is not None and too_big.error.kind == "invalid_input"
    assert "batch_size" in too_big.error.message and "less than or equal to 100" in too_big.error.message
    assert await _updates(platform, too_big.id) == [(0, "Accepted")]  # the handler never ran


async def test_ticking_job_reports_each_step_and_saves_the_coordinates(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticking_job, "STEP_DELAY", 0)
    async with platform.running(ticking_job.listener):
        [job_id] = await ticking_job.scenario(platform.api)
        job = await platform.api.jobs.wait(job_id, timeout=10)

    assert job.job == "workbook:geocode"
    assert job.status == JobStatus.COMPLETE
    assert job.progress == 100
    assert job.outcome is not None and job.outcome.message == "Geocoded 8 offices."
    n = len(ticking_job.COORDINATES)
    assert await _updates(platform, job.id) == [(0, "Accepted")] + [
        (i * 100 // n, f"Geocoded {i} of {n}") for i in range(1, n + 1)]
    sheet = (await platform.api.workbooks.get(job.source or "")).sheets[0]
    records = (await platform.api.records.get(sheet.id)).items
    assert {r.values["city"]: (r.values["latitude"], r.values["longitude"]) for r in records} == ticking_job.COORDINATES


IMPORTED_VOTERS = [
    {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "birth_year": 1815},
    {"first_name": "Charles", "last_name": "Babbage", "email": "charles@example.com", "birth_year": 1791},
    {"first_name": "Edsger", "last_name": "Dijkstra", "email": "edsger@example.com", "birth_year": 1930},
    {"first_name": "Hamilton, Jr.", "last_name": "Margaret", "email": "margaret@example.com", "birth_year": 1936},
    {"first_name": "Barbara", "last_name": "Liskov", "email": "barbara@example.com", "birth_year": 1939},
]
BROKEN_VOTERS = [
    ("row 4", "Row 4: grace-at-example.com is not an email address."),
    ("row 5", "Row 5: has 3 cells; the header has 4."),
    ("row 6", "Row 6: birth_year '19l8' is not a year."),
]


async def _voters(platform: Platform, job: Job) -> list[dict[str, object]]:
    file = await platform.api.files.get(job.source or "")
    [workbook] = await platform.api.workbooks.list(space_id=file.space_id)
    return [r.values for r in (await platform.api.records.get(workbook.sheets[0].id)).items]


async def test_import_contacts_imports_an_uploaded_file_and_reports_its_broken_rows(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = server.platform
    monkeypatch.setattr(import_contacts, "BATCH_SIZE", 3)
    async with platform.running(import_contacts.listener), \
            Client(server.url, token=await server.token("pat")) as member:
        [job_id] = await import_contacts.scenario(member)  # a member uploads the file and presses Import
        job = await member.jobs.wait(job_id, timeout=10)
        downloads = await _downloaded(member, job)

    assert job.job == "file:import" and job.status == JobStatus.COMPLETE, job.error
    assert await _voters(platform, job) == IMPORTED_VOTERS
    errors = await platform.api.jobs.errors(job.id)
    assert [(e.item, e.message) for e in errors.items] == BROKEN_VOTERS
    assert job.checkpoint == {"next_row": 10, "imported": 5, "failed": 3}

    files = {f.role: f for f in job.files}
    assert set(files) == {"input", "error_report"}
    assert (files["input"].file_id, files["input"].name) == (job.source, "voters.csv")
    report_id = files["error_report"].file_id
    report = await platform.api.files.get(report_id)
    assert (report.name, report.mime_type) == ("errors.csv", "text/csv")
    rows = list(csv.reader(io.StringIO((await platform.api.files.read(report_id)).decode(), newline="")))
    assert [row[:2] for row in rows] == [["item", "message"], *map(list, BROKEN_VOTERS)]

    assert job.outcome is not None and job.outcome.acknowledge
    assert job.outcome.message == "Imported 5 of 8 voters from voters.csv. 3 rows have errors: see errors.csv."
    assert job.outcome.next is not None
    assert job.outcome.next.model_dump(by_alias=False) == {
        "type": "files", "files": [{"file_id": report_id}, {"file_id": job.source}],
        "label": "Download the error report"}
    assert downloads == [await platform.api.files.read(report_id), import_contacts.VOTERS_CSV.encode()]
    # One progress report per batch of three rows (and the two attachments, which keep the last one).
    assert await _updates(platform, job.id) == [
        (0, "Accepted"), (0, "Accepted"), (37, "Imported 2 of 8 voters"), (75, "Imported 3 of 8 voters"),
        (99, "Imported 5 of 8 voters"), (99, "Imported 5 of 8 voters")]


async def test_import_contacts_resumes_after_a_failed_batch_from_its_checkpoint(
    platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_contacts, "BATCH_SIZE", 3)
    insert, batches = RecordService.insert, []

    async def flaky(self: RecordService, sheet_id: str, records: list[dict[str, object]]) -> object:
        batches.append([r["first_name"] for r in records])
        if len(batches) == 2:
            raise ConnectionError("The database went away.")
        return await insert(self, sheet_id, records)

    monkeypatch.setattr(RecordService, "insert", flaky)
    async with platform.running(import_contacts.listener):
        [job_id] = await import_contacts.scenario(platform.api)
        waiting = await until(platform, job_id, JobStatus.SCHEDULED, timeout=10)
        assert waiting.checkpoint == {"next_row": 5, "imported": 2, "failed": 1}
        clock.advance(30)
        await platform.scheduler.sweep()
        job = await platform.api.jobs.wait(job_id, timeout=10)

    assert job.status == JobStatus.COMPLETE and job.attempt == 2
    assert batches == [["Ada", "Charles"], ["Edsger"], ["Edsger"], ["Hamilton, Jr.", "Barbara"]]
    assert await _voters(platform, job) == IMPORTED_VOTERS
    errors = await platform.api.jobs.errors(job.id)
    assert [(e.item, e.message) for e in errors.items] == BROKEN_VOTERS, "no row is reported twice"


EXPECTED_DEMO = [
    ("workbook:export", JobStatus.COMPLETE),
    ("workbook:myCustomOperation", JobStatus.COMPLETE),
    ("sheet:publish", JobStatus.FAILED),
    *[(f"sheet:{a['operation']}", JobStatus.COMPLETE) for a in outcomes.ACTIONS],
    ("sheet:validateEmails", JobStatus.FAILED),
    ("sheet:sendInvites", JobStatus.COMPLETE),
    ("sheet:sendInvites", JobStatus.FAILED),
    ("workbook:geocode", JobStatus.COMPLETE),
    ("file:import", JobStatus.COMPLETE),
]


def _mentions_outcome(output: str, job: Job) -> bool:
    message = job.outcome.message if job.outcome else None
    error = job.error.message.splitlines()[0] if job.error else None
    return all(text in output for text in (message, error) if text)


async def test_demo_runs_every_story_twice_on_one_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    seen: set[str] = set()
    exports: list[Job] = []
    for _ in range(2):
        out = io.StringIO()
        jobs = await run_demo(str(db), console=Console(file=out, width=120), step_delay=0)
        output = out.getvalue()

        assert [(job.job, job.status) for job in jobs] == EXPECTED_DEMO
        assert all(job.status.is_terminal for job in jobs)
        assert not seen & {job.id for job in jobs}, "each run starts new jobs"
        seen |= {job.id for job in jobs}
        for job in jobs:
            assert _mentions_outcome(output, job), f"{job.job}: {job.outcome} {job.error} not in output"
        assert "Progress" in output and "Geocoded 8 offices." in output
        assert "[Download this file]" in output and "[Try again]" in output
        exports.append(jobs[0])

    # Each story's handlers see only its own space: only the custom-job story's commits start custom jobs.
    async with Platform.open(str(db)) as platform:
        assert (await platform.api.jobs.list(operation="myCustomOperation")).total == 2
        # Each run's Export button downloads that run's export, from the platform.
        for export in exports:
            [file_id] = _buttons_files(export)
            data = await platform.api.files.read(file_id)
            assert list(csv.DictReader(io.StringIO(data.decode(), newline=""))) == action_export.CONTACTS


async def test_the_demo_names_each_story() -> None:
    stories = load_stories()
    assert [story.name for story in stories] == list(STORIES)
    assert len({story.namespace for story in stories}) == len(stories)
    assert stories[0].title.startswith("Action-based job")


async def test_the_demo_says_where_to_run_it_from_when_examples_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p and Path(p).resolve() != ROOT])
    monkeypatch.delitem(sys.modules, "examples")
    with pytest.raises(ListenerError, match="run the demo from the repository root"):
        load_stories()
