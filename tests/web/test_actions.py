"""Action buttons, the foreground overlay, the toolbar indicator and the outcome dialog's `next` buttons,
with a real listener handling the jobs (job_handler ticking) while Chromium watches."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.async_api import Download, Route, expect

from listener import Event, Listener, Outcome
from listener.models import Workbook
from plugins.job_handler import job_handler
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio

ACTIONS = [
    {"operation": "export", "label": "Export", "primary": True, "confirm": True,
     "tooltip": "Writes every record to a CSV", "description": "Export the contacts to a CSV file."},
    {"operation": "open", "label": "Open sheet"},
    {"operation": "docs", "label": "Read report"},
    {"operation": "bundle", "label": "Bundle"},
    {"operation": "snap", "label": "Snapshot"},
    {"operation": "hide", "label": "Hide emails"},
    {"operation": "geocode", "label": "Geocode"},
    {"operation": "tidy", "label": "Tidy", "mode": "toolbarBlocking"},
    {"operation": "sync", "label": "Sync", "mode": "background", "input_form": {"fields": [
        {"key": "target", "label": "Target", "type": "enum",
         "config": {"options": [{"value": "crm", "label": "The CRM"}, {"value": "sheet", "label": "A sheet"}]}},
        {"key": "dryRun", "label": "Dry run", "type": "boolean"},
        {"key": "batch", "label": "Batch size", "type": "number", "default_value": 100},
        {"key": "note", "label": "Note", "type": "string", "constraints": [{"type": "required"}]}]}},
]


@dataclass
class Stage:
    """The workbook with one action per story, the listener running its jobs, and gates the test opens."""

    web: Web
    workbook: Workbook
    files: list[str]
    gates: dict[str, anyio.Event] = field(default_factory=dict)

    @property
    def sheet_id(self) -> str:
        return self.workbook.sheets[0].id

    def gate(self, name: str) -> anyio.Event:
        return self.gates.setdefault(name, anyio.Event())

    def outcome(self) -> Any:
        return self.web.page.locator("dialog.outcome")

    async def press(self, label: str) -> None:
        await self.web.goto(f"/workbooks/{self.workbook.id}")
        await self.web.page.get_by_role("button", name=label, exact=True).click()

    async def job(self, operation: str) -> Any:
        jobs = await self.web.server.platform.api.jobs.list(operation=[operation])
        assert jobs.total == 1
        return jobs.items[0]


def listener_for(stage: Stage) -> Listener:
    listener = Listener()
    sheet_id = stage.sheet_id

    async def export(event: Event, tick: Any) -> Outcome:
        await tick(50, "Halfway there")
        await stage.gate("export").wait()
        assert event.context.job_id is not None
        rows = [{"email": "ann@example.com"}, {"email": "bo@example.com"}]
        await event.api.jobs.write_data(event.context.job_id, rows)
        return Outcome(heading="Export ready", message="Exported 2 records.", acknowledge=True,
                       next={"type": "download", "url": f"/api/v1/jobs/{event.context.job_id}/data.csv",
                             "file_name": "contacts.csv", "label": "Download contacts"})

    def simple(next_: dict[str, Any]) -> Any:
        async def run(event: Event, tick: Any) -> Outcome:
            await tick(60, "Working")
            return Outcome(message=f"Done: {next_['type']}.", acknowledge=True, next=next_)
        return run

    async def tidy(event: Event, tick: Any) -> Outcome:
        await tick(30, "Tidying")
        await stage.gate("tidy").wait()
        return Outcome(message="Tidied 2 records.")

    async def sync(event: Event, tick: Any) -> Outcome:
        await stage.gate("sync").wait()
        return Outcome(message="Synced with the CRM.")

    listener.use(job_handler("workbook:export", export))
    listener.use(job_handler("workbook:open", simple({"type": "id", "id": sheet_id, "label": "Go to the sheet"})))
    listener.use(job_handler("workbook:docs", simple({"type": "url", "url": "https://docs.example.com/report?id=7",
                                                      "label": "Read the report"})))
    listener.use(job_handler("workbook:bundle", simple({"type": "files", "files": [{"file_id": f} for f in stage.files],
                                                        "label": "Download both"})))
    async def snap(event: Event, tick: Any) -> Outcome:
        snapshot = await event.api.snapshots.create(sheet_id, label="Before import")
        return Outcome(message="Done: snapshot.", acknowledge=True, next={
            "type": "snapshot", "snapshot_id": snapshot.id, "sheet_id": sheet_id, "label": "See the snapshot"})

    listener.use(job_handler("workbook:snap", snap))
    listener.use(job_handler("workbook:hide", simple({"type": "view", "sheet_id": sheet_id, "hidden_columns": ["email"],
                                                      "label": "Show without emails"})))
    listener.use(job_handler("workbook:tidy", tidy))
    listener.use(job_handler("workbook:sync", sync))

    @listener.on("job:ready", job="workbook:geocode")
    async def geocode(event: Event) -> None:  # fails its first attempt with a retry button
        assert event.context.job_id is not None
        job = await event.api.jobs.ack(event.context.job_id)
        if job.attempt == 1:
            await event.api.jobs.fail(job.id, error="Geocoder unavailable", outcome=Outcome(
                heading="Geocoding failed", message="The geocoder was down.", acknowledge=True,
                next={"type": "retry", "label": "Try again"}))
        else:
            await event.api.jobs.complete(job.id, outcome=Outcome(message="Geocoded on attempt 2.", acknowledge=True))

    return listener


@pytest.fixture
async def stage(web: Web) -> AsyncIterator[Stage]:
    api = web.server.platform.api.as_actor("admin")
    workbook = await api.workbooks.create(
        name="Contacts", actions=ACTIONS,
        sheets=[{"name": "People", "slug": "people", "fields": [{"key": "name"}, {"key": "email"}]}])
    await api.records.insert(workbook.sheets[0].id, [{"name": "Ann", "email": "ann@example.com"}])
    files = [await api.files.upload(b"first file\n", name="one.txt", mime_type="text/plain"),
             await api.files.upload(b"second file\n", name="two.txt", mime_type="text/plain")]
    stage = Stage(web, workbook, [f.id for f in files])
    async with web.server.platform.running(listener_for(stage)):
        await web.sign_in(web.server.admin_token, f"/workbooks/{workbook.id}")
        yield stage
        for gate in stage.gates.values():
            gate.set()  # let any handler still waiting finish, so the runner stops at once


async def acknowledged(stage: Stage, click: Any) -> None:
    """Run `click()` and wait for the page to acknowledge the outcome."""
    async with stage.web.page.expect_response(lambda r: r.url.endswith("/outcome/acknowledge")) as answer:
        await click()
    assert (await answer.value).status == 200


async def test_an_action_runs_in_the_foreground_overlay_to_its_outcome_dialog(stage: Stage) -> None:
    page = stage.web.page
    button = page.get_by_role("button", name="Export", exact=True)
    await expect(button).to_have_class(re.compile(r"\bprimary\b"))
    await button.hover()
    await expect(page.get_by_role("tooltip")).to_have_text("Writes every record to a CSV")
    await expect(page.get_by_role("tooltip")).to_be_visible()

    await button.focus()  # by keyboard: Enter presses, Escape backs out, Enter confirms
    await page.keyboard.press("Enter")
    confirm = page.get_by_role("dialog")
    await expect(confirm).to_contain_text("Export the contacts to a CSV file.")
    await expect(confirm.get_by_role("button", name="Export")).to_be_focused()
    await page.keyboard.press("Escape")  # asked first: nothing starts
    await expect(confirm).to_have_count(0)
    await expect(button).to_be_focused()
    assert (await stage.web.server.platform.api.jobs.list(operation=["export"])).total == 0

    await page.keyboard.press("Enter")
    await expect(confirm.get_by_role("button", name="Export")).to_be_focused()
    await page.keyboard.press("Enter")
    overlay = page.locator("dialog.job-overlay")
    await expect(overlay).to_be_visible()
    await expect(overlay.locator(".overlay-info")).to_have_text("Halfway there")
    await expect(overlay.locator("progress")).to_have_attribute("value", "50")
    await expect(overlay).to_contain_text(re.compile(r"about \d+ s left|finishing"))
    stage.gate("export").set()

    outcome = stage.outcome()
    await expect(outcome.get_by_role("heading")).to_have_text("Export ready")
    await expect(outcome).to_contain_text("Exported 2 records.")
    await expect(overlay).to_have_count(0)
    job = await stage.job("export")
    assert job.outcome_acknowledged_at is None

    async def download() -> None:
        _, data = await stage.web.download(outcome.get_by_role("button", name="Download contacts").click)
        assert data == b"email\r\nann@example.com\r\nbo@example.com\r\n"

    await acknowledged(stage, download)
    await expect(outcome).to_have_count(0)
    job = await stage.job("export")
    assert job.outcome_acknowledged_at is not None  # job:outcome-acknowledged
    events = await stage.web.server.platform.api.events.list(job_id=job.id, limit=100)
    assert events[-1].topic == "job:outcome-acknowledged"


async def test_next_id_snapshot_and_view_navigate_inside_the_app(stage: Stage) -> None:
    page = stage.web.page
    await stage.press("Open sheet")
    await acknowledged(stage, stage.outcome().get_by_role("button", name="Go to the sheet").click)
    await expect(page.get_by_role("heading", level=1)).to_have_text("People")
    assert page.url.endswith(f"#/sheets/{stage.sheet_id}")

    await stage.press("Snapshot")
    await acknowledged(stage, stage.outcome().get_by_role("button", name="See the snapshot").click)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Before import")
    (snapshot,) = await stage.web.server.platform.api.snapshots.list(sheet_id=stage.sheet_id)
    assert page.url.endswith(f"#/snapshots/{snapshot.id}")
    await expect(page.locator("table.snapshot-records thead th")).to_have_text(["Since", "name", "email"])
    await expect(page.locator("table.snapshot-records tbody")).to_contain_text("Ann")

    await stage.press("Hide emails")
    await acknowledged(stage, stage.outcome().get_by_role("button", name="Show without emails").click)
    await expect(page.locator('[data-banner="hidden"]')).to_contain_text("Hidden columns: email")
    await expect(page.locator("table.records thead th")).to_have_text(["name"])
    await expect(page.locator("table.records tbody")).to_contain_text("Ann")
    await expect(page.locator("table.records tbody")).not_to_contain_text("ann@example.com")
    await page.get_by_role("button", name="Show all columns").click()
    await expect(page.locator("table.records thead th")).to_have_text(["name", "email"])


async def test_next_url_opens_a_new_tab_and_files_download(stage: Stage) -> None:
    page = stage.web.page
    context = page.context

    async def report(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<h1>Report</h1>")

    await context.route("https://docs.example.com/**", report)
    await stage.press("Read report")
    async with context.expect_page() as opened:
        await acknowledged(stage, stage.outcome().get_by_role("button", name="Read the report").click)
    tab = await opened.value
    await tab.wait_for_load_state()
    assert tab.url == "https://docs.example.com/report?id=7"
    assert await tab.evaluate("window.opener") is None, "opened with noopener"
    await tab.close()

    downloads: list[Download] = []
    both = anyio.Event()

    def on_download(download: Download) -> None:
        downloads.append(download)
        if len(downloads) == 2:
            both.set()

    page.on("download", on_download)
    await stage.press("Bundle")
    await acknowledged(stage, stage.outcome().get_by_role("button", name="Download both").click)
    with anyio.fail_after(10):
        await both.wait()
    got = {d.suggested_filename: Path(await d.path()).read_bytes() for d in downloads}
    assert got == {"one.txt": b"first file\n", "two.txt": b"second file\n"}


async def test_next_retry_runs_the_job_again(stage: Stage) -> None:
    page = stage.web.page
    await stage.press("Geocode")
    outcome = stage.outcome()
    await expect(outcome.get_by_role("heading")).to_have_text("Geocoding failed")
    await expect(outcome).to_contain_text("The geocoder was down.")
    await outcome.get_by_role("button", name="Try again").click()
    await expect(outcome.get_by_role("heading")).to_have_text("Job complete")
    await expect(outcome).to_contain_text("Geocoded on attempt 2.")
    await acknowledged(stage, lambda: page.keyboard.press("Escape"))  # Escape closes, and acknowledges, too
    job = await stage.job("geocode")
    assert (job.status, job.attempt) == ("complete", 2)
    assert job.outcome_acknowledged_at is not None
    await expect(page.locator("dialog")).to_have_count(0)


async def test_toolbar_blocking_shows_an_indicator_and_background_blocks_nothing(stage: Stage) -> None:
    page = stage.web.page
    await stage.press("Tidy")
    chip = page.locator("#activity .chip")
    await expect(chip).to_contain_text("Tidy · 30% · Tidying")
    await expect(page.get_by_role("button", name="Export", exact=True)).to_be_disabled()  # the workbook is blocked
    await expect(page.locator("dialog[open]")).to_have_count(0)  # but nothing covers the page
    await page.get_by_role("link", name="Jobs").click()  # the person can go elsewhere meanwhile
    await expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    stage.gate("tidy").set()
    await expect(chip).to_have_count(0)
    await expect(page.locator(".toast")).to_contain_text("Tidy: Tidied 2 records.")

    await stage.press("Sync")  # its input form first
    form = page.get_by_role("dialog")
    await form.get_by_label("Target").select_option("sheet")
    await form.get_by_label("Dry run").check()
    await expect(form.get_by_label("Batch size")).to_have_value("100")
    await form.get_by_role("button", name="Sync").click()
    await expect(form.get_by_label("Note")).to_be_focused()  # required, so the form is not sent
    await form.get_by_label("Note").fill("<b>weekly</b>")
    await form.get_by_label("Note").press("Enter")
    await expect(page.locator(".toast").filter(has_text="Sync started in the background")).to_be_visible()
    sync = await stage.job("sync")
    assert sync.input == {"target": "sheet", "dryRun": True, "batch": 100, "note": "<b>weekly</b>"}
    await expect(page.locator("dialog[open]")).to_have_count(0)
    await expect(page.locator("#activity .chip")).to_have_count(0)
    await expect(page.get_by_role("button", name="Export", exact=True)).to_be_enabled()
    stage.gate("sync").set()
    await expect(page.locator(".toast").filter(has_text="Sync: Synced with the CRM.")).to_be_visible()
