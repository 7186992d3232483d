"""The jobs grid and a job's page in Chromium: sign-in, live rows, filters, who sees what, every field."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from listener import Outcome
from listener.client import Client
from tests.conftest import ManualClock
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio


async def test_sign_in_keeps_the_token_in_the_tab_and_out_of_urls_and_logs(web: Web, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    token = await web.server.token("mia")
    job = await web.server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")
    urls: list[str] = []
    web.page.on("request", lambda request: urls.append(request.url))
    web.page.on("websocket", lambda ws: urls.append(ws.url))
    web.allow("401")  # the refused token's answer

    await web.page.goto(f"{web.server.url}/")
    await expect(web.page.get_by_role("heading", name="Sign in")).to_be_visible()
    await web.page.get_by_label("Access token").fill("lst_not-a-real-token-0123456789")
    await web.page.get_by_role("button", name="Sign in").click()
    await expect(web.page.locator("#signin-error")).to_have_text("That token is not valid.")
    assert await web.page.evaluate("sessionStorage.length") == 0

    await web.sign_in(token)
    await expect(web.row(job.id)).to_be_visible()
    await expect(web.page.locator("#whoami")).to_contain_text("mia")
    assert await web.page.evaluate("sessionStorage.getItem('listener.token')") == token
    assert await web.page.evaluate("localStorage.length") == 0, "kept for this tab only"

    await web.page.reload()  # the tab keeps its session
    await expect(web.row(job.id)).to_be_visible()
    await expect(web.page.locator("#live")).to_have_text("Live")

    await web.page.get_by_role("button", name="Sign out").click()
    await expect(web.page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await web.page.evaluate("sessionStorage.getItem('listener.token')") is None
    assert any("/events/stream" in u for u in urls) and any("/api/v1/jobs" in u for u in urls)
    assert [u for u in urls if token in u] == []
    assert token not in caplog.text
    assert "lst_not-a-real-token" not in caplog.text


async def test_a_row_appears_and_changes_live_as_a_remote_listener_works(web: Web) -> None:
    server = web.server
    await web.sign_in(server.admin_token)
    await expect(web.page.get_by_text("No jobs yet")).to_be_visible()
    await web.page.evaluate("window.stillTheSamePage = true")
    admin = server.platform.api.as_actor("admin")

    job = await admin.jobs.create(type="workbook", operation="import", info="Queued")
    row = web.row(job.id)
    await expect(row).to_have_attribute("data-status", "ready")
    await expect(row.locator(".st-ready .st-icon")).to_be_visible()  # waiting for a worker: not yet the spinner
    await expect(row.locator(".st-running")).to_have_count(0)
    await expect(row).to_contain_text("workbook:import")
    await expect(row).to_contain_text("Queued")

    agent = await server.token("worker", "agent")
    async with Client(server.url, token=agent) as remote:  # a listener elsewhere, over HTTP
        await remote.jobs.ack(job.id, info="Reading rows", progress=0)
        await expect(row).to_have_attribute("data-status", "executing")
        await expect(row.locator(".st-running .st-icon")).to_be_visible()  # the spinner: a worker runs it
        await expect(row.locator("td").nth(4).locator("time")).to_be_visible()  # started
        eta = datetime.now(UTC) + timedelta(seconds=600)
        await remote.jobs.update(job.id, progress=40, processed=400, total=1000, info="400 of 1,000 rows",
                                 estimated_completion_at=eta)
        await expect(row.locator("progress")).to_have_attribute("value", "40")
        await expect(row).to_contain_text("400 / 1,000 items")
        await expect(row).to_contain_text("400 of 1,000 rows")
        await expect(row.locator(".eta")).to_have_text(re.compile(r"about (9|10) min left"))
        await remote.jobs.complete(job.id, outcome={"message": "Imported 1,000 rows."})
        await expect(row).to_have_attribute("data-status", "complete")
        await expect(row.locator(".st-complete")).to_have_text("Complete")  # the check mark
        await expect(row.locator("td").nth(5).locator("time")).to_be_visible()  # ended
        await expect(row.locator("td").nth(6)).to_have_text("—")  # not failed

        failing = await admin.jobs.create(type="sheet", operation="geocode")
        await expect(web.row(failing.id)).to_be_visible()
        await remote.jobs.ack(failing.id)
        await remote.jobs.fail(failing.id, error="Geocoder unavailable")
    failed = web.row(failing.id)
    await expect(failed.locator(".st-failed")).to_have_text("Failed")  # the cross
    await expect(failed.locator("td").nth(6).locator("time")).to_be_visible()  # failed at
    await expect(failed).to_contain_text("Geocoder unavailable")
    await expect(web.page.locator("table.jobs tbody tr")).to_have_count(2)
    assert await web.page.evaluate("window.stillTheSamePage") is True, "no reload"


async def test_filters_and_paging(web: Web) -> None:
    admin = web.server.platform.api.as_actor("admin")
    for _ in range(27):
        await admin.jobs.create(type="workbook", operation="export")
    tidy = [await admin.jobs.create(type="sheet", operation="tidy") for _ in range(2)]
    broken = await admin.jobs.create(type="file", operation="extractPdf")
    await web.server.platform.api.jobs.ack(broken.id)
    await web.server.platform.api.jobs.fail(broken.id, error="Not a PDF")

    await web.sign_in(web.server.admin_token)
    rows = web.page.locator("table.jobs tbody tr")
    await expect(web.page.locator("#jobs-summary")).to_have_text("1–25 of 30 jobs")
    await expect(rows).to_have_count(25)
    await web.page.get_by_role("button", name="Next ›").click()
    await expect(web.page.locator("#jobs-summary")).to_have_text("26–30 of 30 jobs")
    await expect(rows).to_have_count(5)
    assert "page=2" in web.page.url

    await web.page.get_by_label("Status").select_option("failed")
    await expect(web.page.locator("#jobs-summary")).to_have_text("1–1 of 1 jobs")
    await expect(web.row(broken.id)).to_contain_text("Not a PDF")
    await web.page.get_by_label("Status").select_option("")
    await web.page.get_by_label("Type").select_option("sheet")
    await expect(rows).to_have_count(2)
    for job in tidy:
        await expect(web.row(job.id)).to_be_visible()
    await web.page.get_by_label("Type").select_option("")
    await web.page.get_by_label("Operation").fill("extractPdf")
    await expect(rows).to_have_count(1)
    await expect(web.row(broken.id)).to_be_visible()
    assert "operation=extractPdf" in web.page.url

    await web.page.reload()  # the filters are in the address, so a reload (or a shared link) keeps them
    await expect(web.page.get_by_label("Operation")).to_have_value("extractPdf")
    await expect(rows).to_have_count(1)


async def test_a_member_sees_only_their_own_jobs_and_an_admin_all(web: Web) -> None:
    server = web.server
    mia = await server.token("mia")
    await server.token("noah")
    mine = await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")
    theirs = await server.platform.api.as_actor("noah").jobs.create(type="workbook", operation="export",
                                                                   info="Noah's private export")
    await web.sign_in(mia)
    await expect(web.row(mine.id)).to_be_visible()
    await expect(web.page.get_by_label("All jobs")).to_have_count(0)  # no toggle for members
    later_theirs = await server.platform.api.as_actor("noah").jobs.create(type="workbook", operation="export")
    later_mine = await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")
    await expect(web.row(later_mine.id)).to_be_visible()  # live, and after Noah's, which never shows
    await expect(web.page.locator("table.jobs tbody tr")).to_have_count(2)
    await expect(web.page.get_by_text("Noah's private export")).to_have_count(0)

    web.allow("404")
    await web.goto(f"/jobs/{theirs.id}")
    await expect(web.page.locator(".banner.error")).to_contain_text(f"Job {theirs.id} not found")

    await web.page.get_by_role("button", name="Sign out").click()
    await web.sign_in(server.admin_token)
    for job in (mine, theirs, later_theirs, later_mine):
        await expect(web.row(job.id)).to_be_visible()
    await web.page.get_by_label("All jobs").uncheck()  # the admin's own jobs only
    await expect(web.page.locator("table.jobs tbody tr")).to_have_count(1)
    await expect(web.page.get_by_text("No jobs yet")).to_be_visible()
    await web.page.get_by_label("All jobs").check()
    await expect(web.page.locator("table.jobs tbody tr")).to_have_count(4)


async def test_a_job_page_shows_every_field_its_files_data_errors_parts_and_trail(web: Web, clock: ManualClock) -> None:
    server = web.server
    token = await server.token("mia")
    mia = server.platform.api.as_actor("mia")
    agent = server.platform.api.as_actor("agent:importer")
    job = await mia.jobs.create(type="file", operation="import", info="Importing voters.csv",
                                input={"delimiter": ";", "note": "<b>not bold</b>"})
    await agent.jobs.ack(job.id, info="Reading")
    source = await mia.files.upload(b"name\nAnn\nBo\n", name="voters.csv", mime_type="text/csv")
    report = await agent.files.upload(b"row,message\n3,bad email\n", name="errors.csv", mime_type="text/csv")
    await agent.jobs.attach_file(job.id, source.id, role="input")
    await agent.jobs.attach_file(job.id, report.id, role="error_report")
    await agent.jobs.log_error(job.id, item="row 3", message="email: 'bo@' is not an email address")
    await agent.jobs.write_data(job.id, [{"name": "Ann", "city": "Oslo"}])
    await agent.jobs.update(job.id, progress=100, processed=2, total=2)
    clock.advance(1.155223)
    await agent.jobs.complete(job.id, outcome=Outcome(heading="Import done", message="Imported 1 of 2 rows."))
    empty = await mia.jobs.create(type="workbook", operation="export")

    await web.sign_in(token, f"/jobs/{job.id}")
    page = web.page
    await expect(page.get_by_role("heading", level=1)).to_contain_text("file:import")
    await expect(page.locator('[data-field="deltaT"]')).to_have_text("0:00:01.155223")  # Zoltar's ΔT
    await expect(page.locator('[data-field="duration"]')).to_have_text("0:00:01.155223")
    for key, text in [("id", job.id), ("status", "Complete"), ("createdBy", "mia"), ("processed", "2"),
                      ("total", "2"), ("attempt", "1"), ("mode", "foreground"), ("dataRows", "1")]:
        await expect(page.locator(f'dd[data-field="{key}"]')).to_have_text(text)
    await expect(page.locator('dd[data-field="startedAt"] time')).to_be_visible()
    await expect(page.locator('pre[data-json="in"]')).to_contain_text('"note": "<b>not bold</b>"')
    await expect(page.locator('pre[data-json="out"]')).to_contain_text('"message": "Imported 1 of 2 rows."')
    await expect(page.locator("table.job-files tbody tr")).to_have_count(2)
    await expect(page.locator('table.job-files tr[data-role="input"]')).to_contain_text("voters.csv")
    await expect(page.locator('table.job-files tr[data-role="error_report"]')).to_contain_text("Error report")
    await expect(page.locator("table.errors")).to_contain_text("email: 'bo@' is not an email address")
    await expect(page.locator(".trail")).to_contain_text("job:created")
    await expect(page.locator(".trail")).to_contain_text("job:completed")

    name, data = await web.download(page.get_by_role("button", name="Download job data (CSV)").click)
    assert (name, data) == (f"{job.id}-data.csv", b"name,city\r\nAnn,Oslo\r\n")
    name, data = await web.download(page.get_by_role("button", name="Download voters.csv").click)
    assert (name, data) == ("voters.csv", b"name\nAnn\nBo\n")
    name, data = await web.download(page.get_by_role("button", name="Download error log (CSV)").click)
    assert name == f"{job.id}-errors.csv" and b"row 3,email: 'bo@' is not an email address" in data

    await web.goto(f"/jobs/{empty.id}")
    button = page.get_by_role("button", name="Download job data (CSV)")
    await expect(button).to_be_disabled()
    await expect(button).to_contain_text("(No job data)")


async def test_a_job_page_shows_failures_retries_and_subtasks(web: Web) -> None:
    server = web.server
    admin = server.platform.api.as_actor("admin")
    jobs = server.platform.api.jobs
    flaky = await admin.jobs.create(type="sheet", operation="geocode", retry={"max_attempts": 3, "base_seconds": 60})
    await jobs.ack(flaky.id)
    await jobs.fail(flaky.id, error="Geocoder unavailable", retryable=True)
    slow = await admin.jobs.create(type="sheet", operation="geocode")
    await jobs.ack(slow.id)
    await jobs.fail(slow.id, error="Gave up after 60 s", kind="timeout")
    parent = await admin.jobs.create(type="workbook", operation="import")
    await jobs.ack(parent.id)
    await jobs.split(parent.id, parts=2)
    parts = (await jobs.list(parent_id=parent.id)).items
    await jobs.cancel(parts[1].id)

    await web.sign_in(server.admin_token, f"/jobs/{flaky.id}")
    page = web.page
    await expect(page.locator(".banner")).to_contain_text("Attempt 1 of 3 failed; the next retry is at")
    await expect(page.locator(".failure")).to_contain_text("Geocoder unavailable")
    await expect(page.locator('dd[data-field="nextAttemptAt"] time')).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Retrying")

    await web.goto(f"/jobs/{slow.id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Timed out")  # Zoltar's TIMEOUT
    await expect(page.locator(".failure")).to_contain_text("Failure (timeout)")
    await expect(page.locator(".failure")).to_contain_text("Gave up after 60 s")

    await web.goto(f"/jobs/{parent.id}")
    rows = page.locator("table.parts tbody tr")
    await expect(rows).to_have_count(2)
    first, second = (page.locator(f'table.parts tr[data-job-id="{part.id}"]') for part in parts)
    await expect(second).to_have_attribute("data-status", "cancelled")
    await expect(first).not_to_have_attribute("data-status", "cancelled")
    await jobs.ack(parts[0].id)
    await jobs.complete(parts[0].id)  # the subtask's status changes live
    await expect(first).to_have_attribute("data-status", "complete")


async def test_the_filter_takes_other_systems_status_words_and_a_job_page_says_fiddlers(web: Web) -> None:
    """`#/jobs?status=SUCCESS` as typed, the select's Fiddler / Cocoa Canvas / Zoltar words, `?type=voters`,
    and a job's page showing Fiddler's word beside ours, live."""
    server = web.server
    admin = server.platform.api.as_actor("admin")
    jobs = server.platform.api.jobs
    done = await jobs.complete((await jobs.ack((await admin.jobs.create(type="voters", operation="geocode")).id)).id)
    flaky = await admin.jobs.create(type="sheet", operation="geocode", retry={"max_attempts": 3, "base_seconds": 60})
    await jobs.ack(flaky.id)
    await jobs.fail(flaky.id, error="Geocoder unavailable", retryable=True)
    slow = await jobs.ack((await admin.jobs.create(type="import_voters", operation="run")).id)
    await jobs.fail(slow.id, error="Gave up after 60 s", kind="timeout")
    waiting = await admin.jobs.create(type="voters", operation="geocode")
    rows = web.page.locator("table.jobs tbody tr")

    async def shows(*expected: object) -> None:
        await expect(rows).to_have_count(len(expected))
        for job in expected:
            await expect(web.row(job.id)).to_be_visible()  # type: ignore[attr-defined]

    await web.sign_in(server.admin_token, "/jobs?status=SUCCESS")  # typed in the address, as Fiddler writes it
    await shows(done)
    await expect(web.page.get_by_label("Status")).to_have_value("SUCCESS")
    await web.goto("/jobs?status=timeout")  # any case
    await shows(slow)
    await expect(web.page.get_by_label("Status")).to_have_value("TIMEOUT")
    status = web.page.get_by_label("Status")
    await status.select_option("RETRY")
    await shows(flaky)
    assert "status=RETRY" in web.page.url
    await status.select_option("pending")  # Cocoa Canvas's
    await shows(waiting)
    await status.select_option("processing")
    await expect(web.page.get_by_text("No jobs match these filters.")).to_be_visible()
    await status.select_option("FAILURE")
    await shows(slow)
    await web.goto("/jobs?status=PENDING,RETRY&type=sheet")  # several words, and a type in the address
    await shows(flaky)
    await web.goto("/jobs?type=voters")  # a type of its own, offered beside the five domains
    await shows(waiting, done)
    await expect(web.page.get_by_label("Type")).to_have_value("voters")

    for job, ours, fiddler in ((done, "Complete", "SUCCESS"), (flaky, "Retrying", "RETRY"),
                               (slow, "Timed out", "FAILURE"), (waiting, "Ready", "PENDING")):
        await web.goto(f"/jobs/{job.id}")
        heading = web.page.get_by_role("heading", level=1)
        await expect(heading).to_contain_text(ours)
        await expect(heading.locator(".fiddler-status")).to_have_text(fiddler)
        await expect(web.page.locator('dd[data-field="fiddlerStatus"]')).to_have_text(fiddler)
    await jobs.ack(waiting.id)  # the page follows the job
    await expect(web.page.get_by_role("heading", level=1).locator(".fiddler-status")).to_have_text("STARTED")

    web.allow("422")
    await web.goto("/jobs?status=SUCCEEDED")
    await expect(web.page.locator(".banner.error")).to_contain_text("'SUCCEEDED' is not a status; use one of")
    await expect(web.page.locator(".banner.error")).to_contain_text("SUCCESS")
