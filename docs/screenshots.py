"""Take the screenshots of the web page shown in the README: `.venv/bin/python docs/screenshots.py`.

It opens a fresh platform in a temporary directory, fills it with a few people's jobs, a workbook,
files and a document, runs a listener for the workbook's actions, and drives Debian's Chromium
(/usr/bin/chromium, never a downloaded browser) through each page, writing docs/*.png.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from playwright.async_api import Page, async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from listener import Event, Listener, Outcome, Platform  # noqa: E402
from listener.platform.auth import Users  # noqa: E402
from listener.platform.server import serve  # noqa: E402
from plugins.job_handler import job_handler  # noqa: E402

DOCS = ROOT / "docs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--font-render-hinting=none"]


async def seed(platform: Platform) -> dict[str, Any]:
    ana, ben, admin = (platform.api.as_actor(n) for n in ("ana", "ben", "admin"))
    agent = platform.api.as_actor("agent:importer")
    space = await admin.spaces.create(name="Voter outreach")
    wb = await ana.workbooks.create(
        name="October Report Workbook", space_id=space.id, labels=["primary"],
        sheets=[{"name": "Contacts", "slug": "contacts",
                 "fields": [{"key": "name", "label": "Name"}, {"key": "email", "label": "Email"},
                            {"key": "city", "label": "City"}, {"key": "phone", "label": "Phone"}]},
                {"name": "Households", "slug": "households", "fields": [{"key": "address", "label": "Address"}]}],
        actions=[{"operation": "export", "label": "Export Data", "primary": True, "confirm": True,
                  "tooltip": "Writes every contact to a CSV file", "description": "Export the contacts to a CSV file."},
                 {"operation": "geocode", "label": "Geocode", "mode": "toolbarBlocking",
                  "tooltip": "Adds coordinates to each address"},
                 {"operation": "sync", "label": "Sync to CRM", "mode": "background"}])
    people = [("Ann Lee", "ann@example.com", "Oslo", "+47 555 0101"), ("Bo Chen", "bo@example.com", "Bergen", ""),
              ("Cara Diaz", "cara@example.com", "Lisbon", "+351 555 0199"),
              ("Dev Patel", "dev@example.com", "Leeds", "+44 555 0142"), ("Eli Novak", "eli@", "Prague", "")]
    await ana.records.insert(wb.sheets[0].id, [dict(zip(("name", "email", "city", "phone"), p, strict=True))
                                                for p in people])
    voters = await ana.files.upload(b"name,email\n" + b"Ann,ann@example.com\n" * 40, name="voters.csv",
                                    mime_type="text/csv", space_id=space.id,
                                    actions=[{"operation": "import", "label": "Import", "primary": True}])
    await ben.files.upload(b"%PDF-1.7\n", name="walk-list.pdf", mime_type="application/pdf", space_id=space.id)
    await admin.documents.create(
        title="Getting started", space_id=space.id,
        body="# Welcome\n\nUpload a **CSV** of voters, then press *Import* on the file.\n\n"
             "- Bad rows go to the job's error log\n- Progress shows live on the Jobs page\n\n"
             "See the [docs](https://example.com/docs) for more.",
        actions=[{"operation": "summarize", "label": "Summarize", "tooltip": "Writes a short summary"}])

    # A finished import with everything a job page shows.
    done = await ana.jobs.create(type="file", operation="import", source=voters.id, input={"delimiter": ","},
                                 info="Importing voters.csv")
    await agent.jobs.ack(done.id, info="Reading rows")
    await agent.jobs.attach_file(done.id, voters.id, role="input")
    report = await agent.files.upload(b"row,message\n7,bad email\n", name="errors.csv", mime_type="text/csv")
    await agent.jobs.attach_file(done.id, report.id, role="error_report")
    await agent.jobs.log_errors(done.id, [{"item": "row 7", "message": "email: 'eli@' is not an email address"},
                                          {"item": "row 12", "message": "phone: too many digits"}])
    await agent.jobs.write_data(done.id, [{"name": "Ann Lee", "status": "imported"}])
    await agent.jobs.update(done.id, progress=100, processed=38, total=40, info="Imported 38 of 40 rows")
    await agent.jobs.complete(done.id, outcome=Outcome(heading="Import finished", acknowledge=False,
                                                       message="Imported 38 of 40 rows; 2 rows had errors."))
    # Others: running with an estimate, failed, timed out, waiting to retry, cancelled.
    running = await ben.jobs.create(type="sheet", operation="findReplace", source=wb.sheets[0].id)
    await agent.jobs.ack(running.id)
    await agent.jobs.update(running.id, progress=62, processed=6_200, total=10_000, info="Replacing in batch 7 of 10",
                            estimated_completion_at=datetime.now(UTC) + timedelta(seconds=95))
    failed = await ben.jobs.create(type="workbook", operation="export")
    await agent.jobs.ack(failed.id)
    await agent.jobs.fail(failed.id, error="The CRM refused the credentials (401).")
    slow = await admin.jobs.create(type="sheet", operation="dedupe")
    await agent.jobs.ack(slow.id)
    await agent.jobs.fail(slow.id, error="Timed out after 3600 s.", kind="timeout")
    flaky = await ana.jobs.create(type="workbook", operation="geocode", retry={"max_attempts": 5, "base_seconds": 30})
    await agent.jobs.ack(flaky.id)
    await agent.jobs.fail(flaky.id, error="Geocoder unavailable", retryable=True)
    cancelled = await admin.jobs.create(type="space", operation="configure")
    await admin.jobs.cancel(cancelled.id, info="Cancelled by admin")
    await admin.jobs.create(type="document", operation="summarize", info="Waiting for a worker")
    return {"wb": wb, "done": done, "space": space}


def listener_for(gates: dict[str, anyio.Event]) -> Listener:
    listener = Listener()

    async def export(event: Event, tick: Any) -> Outcome:
        await tick(45, "Writing rows 2,000 to 3,000")
        await gates["export"].wait()
        return Outcome(heading="Export ready", message="Exported 4,812 contacts to contacts.csv.", acknowledge=True,
                       next={"type": "url", "url": "https://example.com/contacts.csv",
                             "label": "Download contacts.csv"})

    async def geocode(event: Event, tick: Any) -> Outcome:
        await tick(35, "Geocoding addresses")
        await gates["geocode"].wait()
        return Outcome(message="Geocoded.")

    listener.use(job_handler("workbook:export", export))
    listener.use(job_handler("workbook:geocode", geocode, filter={"payload.mode": "toolbarBlocking"}))
    return listener


async def shoot(page: Page, name: str, *, full: bool = False) -> None:
    await page.evaluate("() => document.querySelectorAll('.toast').forEach((toast) => toast.remove())")
    await page.wait_for_timeout(300)  # let the last transition settle; only for the picture, never in tests
    await page.screenshot(path=str(DOCS / f"{name}.png"), full_page=full)
    print(f"docs/{name}.png")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with Platform.open(f"sqlite:///{tmp}/listener.db") as platform, anyio.create_task_group() as tg:
            users = Users(platform.store, platform.clock)
            token = await users.ensure_admin()
            assert token is not None
            _, ana = await users.create("ana", "member")
            port = await tg.start(functools.partial(serve, platform, port=0, users=users))
            url = f"http://127.0.0.1:{port}"
            ids = await seed(platform)
            gates = {"export": anyio.Event(), "geocode": anyio.Event()}
            async with platform.running(listener_for(gates)), async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                context = await browser.new_context(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
                page = await context.new_page()
                await page.goto(f"{url}/")
                await expect(page.get_by_label("Access token")).to_be_visible()
                await shoot(page, "signin")
                await page.get_by_label("Access token").fill(token)
                await page.get_by_role("button", name="Sign in").click()
                await expect(page.locator("#live")).to_have_text("Live")
                await expect(page.locator("table.jobs tbody tr")).to_have_count(7)
                await shoot(page, "jobs")

                await page.evaluate("id => { location.hash = `#/jobs/${id}`; }", ids["done"].id)
                await expect(page.locator(".trail li").first).to_be_visible()
                await shoot(page, "job", full=True)

                wb = ids["wb"]
                await page.evaluate("id => { location.hash = `#/sheets/${id}`; }", wb.sheets[0].id)
                await expect(page.locator("table.records tbody tr")).to_have_count(5)
                await page.get_by_role("button", name="Geocode").click()
                await expect(page.locator("#activity .chip")).to_be_visible()
                await page.get_by_role("button", name="Export Data").hover()
                await shoot(page, "sheet")
                gates["geocode"].set()
                await expect(page.locator("#activity .chip")).to_have_count(0)

                await page.get_by_role("button", name="Export Data").click()
                await shoot(page, "confirm")
                await page.get_by_role("dialog").get_by_role("button", name="Export Data").click()
                info = page.locator("dialog.job-overlay .overlay-info")
                await expect(info).to_have_text("Writing rows 2,000 to 3,000")
                await shoot(page, "overlay")
                gates["export"].set()
                await expect(page.locator("dialog.outcome")).to_be_visible()
                await shoot(page, "outcome")
                await page.locator("dialog.outcome").get_by_role("button", name="Close").click()

                await page.evaluate("() => { location.hash = '#/workbooks'; }")
                await expect(page.locator("table.workbooks tbody tr")).to_have_count(1)
                await shoot(page, "workbooks")
                await page.evaluate("() => { location.hash = '#/files'; }")
                await expect(page.locator("table.files tbody tr")).to_have_count(3)
                await shoot(page, "files")
                await page.evaluate("() => { location.hash = '#/documents'; }")
                await page.get_by_role("link", name="Getting started").click()
                await expect(page.locator(".markdown h2")).to_have_text("Welcome")
                await shoot(page, "document")

                phone = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                mobile = await phone.new_page()
                await mobile.goto(f"{url}/")
                await mobile.get_by_label("Access token").fill(ana)
                await mobile.get_by_role("button", name="Sign in").click()
                await expect(mobile.locator("table.jobs tbody tr").first).to_be_visible()
                await shoot(mobile, "mobile")
                await browser.close()
            tg.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(main)
