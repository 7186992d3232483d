"""Take the screenshots of the web page shown in the README: `.venv/bin/python docs/screenshots.py`.

It opens a fresh platform in a temporary directory on a clock it can set back, fills it with a few
people's jobs (an import that failed once and then logged bad rows, a job waiting for its third attempt,
and three quarters of an hour of exports that completed and failed, for the queue's chart), a workbook,
files, a document, a schedule and a webhook that posts to a receiver on 127.0.0.1, runs a listener for the
workbook's actions, and drives Debian's Chromium (/usr/bin/chromium, never a downloaded browser) through
each page, writing docs/*.png.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class ShiftedClock:
    """The wall clock, moved by `shift`: the seed sets it back to make jobs that ended minutes ago."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def at(self, minutes_ago: float) -> None:
        self.shift = timedelta(minutes=-minutes_ago)


class Receiver(BaseHTTPRequestHandler):
    """The webhook's receiver: answers every POST 204."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def retry_due(platform: Platform, clock: ShiftedClock, job_id: str) -> None:
    """Move the clock just past the job's next retry and sweep, so that it is ready for its next attempt."""
    job = await platform.api.jobs.get(job_id)
    assert job.next_attempt_at is not None
    clock.shift = job.next_attempt_at + timedelta(seconds=1) - datetime.now(UTC)
    await platform.scheduler.sweep()


async def seed_history(platform: Platform, clock: ShiftedClock) -> dict[str, Any]:
    """What happened before now, oldest first, each at its time: the queue's chart and two jobs' attempts."""
    ben, ana, admin = (platform.api.as_actor(n) for n in ("ben", "ana", "admin"))
    agent = platform.api.as_actor("agent:crm")
    lease = 3600  # while the clock jumps, no lease runs out
    clock.at(50)
    space = await admin.spaces.create(name="Voter outreach")
    # workbook:export over the last 45 minutes: a few a minute, busier in the middle, failures in two bursts.
    for minute in range(45, 0, -1):
        done = (3, 5, 4, 6, 8, 7, 9, 6, 5, 4)[minute % 10] + (4 if 15 <= minute <= 30 else 0)
        failed = 3 if minute in (22, 23) else 1 if minute % 9 == 0 else 0
        for n in range(done + failed):
            clock.at(minute - n / (done + failed + 1))
            job = await ben.jobs.create(type="workbook", operation="export", info="Nightly CRM export")
            await agent.jobs.ack(job.id, lease_seconds=lease)
            if n < done:
                await agent.jobs.complete(job.id, outcome=Outcome(message=f"Exported {1_200 + 37 * n:,} rows."))
            else:
                await agent.jobs.fail(job.id, error="The CRM answered 503 Service Unavailable.")
    importer = platform.api.as_actor("agent:importer")
    # An import whose first attempt lost its database connection; the second imported all but two rows.
    clock.at(12)
    voters = await ana.files.upload(b"name,email\n" + b"Ann,ann@example.com\n" * 40, name="voters.csv",
                                    mime_type="text/csv", space_id=space.id,
                                    actions=[{"operation": "import", "label": "Import", "primary": True}])
    done = await ana.jobs.create(type="file", operation="import", source=voters.id, input={"delimiter": ","},
                                 info="Importing voters.csv", retry={"max_attempts": 3, "base_seconds": 20})
    await importer.jobs.ack(done.id, info="Reading rows", lease_seconds=lease)
    clock.at(11.6)
    await importer.jobs.fail(done.id, error="Lost the connection to the database (server closed it).",
                             retryable=True)
    await retry_due(platform, clock, done.id)
    await importer.jobs.ack(done.id, info="Reading rows", lease_seconds=lease)
    await importer.jobs.attach_file(done.id, voters.id, role="input")
    report = await importer.files.upload(b"row,message\n7,bad email\n", name="errors.csv", mime_type="text/csv")
    await importer.jobs.attach_file(done.id, report.id, role="error_report")
    clock.shift += timedelta(seconds=40)
    await importer.jobs.log_errors(done.id, [{"item": "row 7", "message": "email: 'eli@' is not an email address"},
                                             {"item": "row 12", "message": "phone: too many digits"}])
    await importer.jobs.write_data(done.id, [{"name": "Ann Lee", "status": "imported"}])
    await importer.jobs.update(done.id, progress=100, processed=38, total=40, info="Imported 38 of 40 rows")
    clock.shift += timedelta(seconds=35)
    await importer.jobs.complete(done.id, outcome=Outcome(heading="Import finished", acknowledge=False,
                                                          message="Imported 38 of 40 rows; 2 rows had errors."))
    # A geocode that failed twice and waits for its third attempt, well after the pictures are taken.
    clock.at(30)
    flaky = await admin.jobs.create(type="sheet", operation="geocode", info="Geocoding Households",
                                    retry={"max_attempts": 5, "base_seconds": 900, "cap_seconds": 3600})
    geocoder = platform.api.as_actor("agent:geocoder")
    await geocoder.jobs.ack(flaky.id, lease_seconds=lease)
    clock.at(29)
    await geocoder.jobs.fail(flaky.id, error="Geocoder unavailable (connection refused).", retryable=True)
    await retry_due(platform, clock, flaky.id)
    await geocoder.jobs.ack(flaky.id, lease_seconds=lease)
    clock.shift += timedelta(seconds=75)
    await geocoder.jobs.fail(flaky.id, error="Geocoder rate limit: 429 Too Many Requests.", retryable=True)
    clock.at(0)
    return {"done": done, "voters": voters, "flaky": flaky, "space": space}


async def seed(platform: Platform, clock: ShiftedClock, hook_url: str) -> dict[str, Any]:
    history = await seed_history(platform, clock)
    ana, ben, admin = (platform.api.as_actor(n) for n in ("ana", "ben", "admin"))
    agent = platform.api.as_actor("agent:importer")
    space = history["space"]
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
    await ben.files.upload(b"%PDF-1.7\n", name="walk-list.pdf", mime_type="application/pdf", space_id=space.id)
    await admin.documents.create(
        title="Getting started", space_id=space.id,
        body="# Welcome\n\nUpload a **CSV** of voters, then press *Import* on the file.\n\n"
             "- Bad rows go to the job's error log\n- Progress shows live on the Jobs page\n\n"
             "See the [docs](https://example.com/docs) for more.",
        actions=[{"operation": "summarize", "label": "Summarize", "tooltip": "Writes a short summary"}])

    hook = await admin.webhooks.create(url=f"{hook_url}/listener/jobs", topics=["job:completed", "job:failed"],
                                description="Tells the CRM when a job ends")
    paused = await admin.webhooks.create(url=f"{hook_url}/listener/workbooks", topics="job:*",
                                         filter={"job": "workbook:*"}, description="Workbook jobs, for the audit log")
    await admin.webhooks.pause(paused.webhook.id)
    # Others: running with an estimate, failed, timed out, cancelled, and one no worker listens for.
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
    cancelled = await admin.jobs.create(type="space", operation="configure")
    await admin.jobs.cancel(cancelled.id, info="Cancelled by admin")
    await admin.jobs.create(type="document", operation="summarize", info="Waiting for a worker")
    await admin.schedules.create(job="workbook:export", cron="0 2 * * *", timezone="Europe/Oslo",
                                 input={"format": "csv"}, source=wb.id)
    await admin.schedules.create(job="sheet:dedupe", cron="0 */6 * * *", source=wb.sheets[0].id)
    await admin.schedules.create(job="file:import", cron="30 6 * * 1-5", timezone="America/New_York", paused=True)
    return {"wb": wb, "hook": hook.webhook, **history}


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


async def go(page: Page, route: str) -> None:
    await page.evaluate("route => { location.hash = route; }", route)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        hook_url = f"http://127.0.0.1:{receiver.server_port}"
        clock = ShiftedClock()
        async with Platform.open(f"sqlite:///{tmp}/listener.db", clock=clock) as platform, \
                anyio.create_task_group() as tg:
            users = Users(platform.store, platform.clock)
            token = await users.ensure_admin()
            assert token is not None
            _, ana = await users.create("ana", "member")
            port = await tg.start(functools.partial(serve, platform, port=0, users=users))
            url = f"http://127.0.0.1:{port}"
            ids = await seed(platform, clock, hook_url)
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
                await expect(page.locator("table.jobs tbody tr")).to_have_count(25)
                await expect(page.locator(".tabs .count[data-count=all]")).not_to_have_text("…")
                await shoot(page, "jobs")
                for row in range(1, 4):
                    await page.locator("table.jobs tbody tr").nth(row).locator("input.select-row").check()
                await expect(page.locator(".bulk-bar")).to_be_visible()
                await shoot(page, "jobs-bulk")
                await page.locator("table.jobs thead input.select-page").check()
                await page.locator("table.jobs thead input.select-page").uncheck()

                await go(page, "#/queues")
                await expect(page.locator("table.queues tbody tr[data-job='workbook:export']")).to_be_visible()
                await shoot(page, "queues")
                await go(page, "#/queues/workbook:export")
                await expect(page.locator("svg.throughput rect.bar").first).to_be_attached()
                await expect(page.locator("table.workers tbody tr")).to_have_count(1)
                await shoot(page, "queue", full=True)

                await go(page, f"#/jobs/{ids['done'].id}")
                await expect(page.locator(".trail li").first).to_be_visible()
                await expect(page.get_by_role("button", name="Retry failed items")).to_be_visible()
                await expect(page.locator(".trail li", has_text="job:completed")).to_have_count(1)
                await page.locator(".trail").evaluate("trail => { trail.scrollTop = trail.scrollHeight; }")
                await shoot(page, "job", full=True)

                await go(page, "#/schedules")
                await expect(page.get_by_text("sheet:dedupe")).to_be_visible()
                await shoot(page, "schedules")
                with anyio.fail_after(10):
                    while len(await platform.api.webhooks.deliveries(ids["hook"].id)) < 2:
                        await anyio.sleep(0.2)
                await go(page, "#/webhooks")
                await page.get_by_role("button", name="Deliveries").first.click()
                await expect(page.locator("table.deliveries tbody tr td.mono").first).to_be_visible()
                await shoot(page, "webhooks")

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

                await go(page, "#/workbooks")
                await expect(page.locator("table.workbooks tbody tr")).to_have_count(1)
                await shoot(page, "workbooks")
                await go(page, "#/files")
                await expect(page.locator("table.files tbody tr")).to_have_count(3)
                await shoot(page, "files")
                await go(page, "#/documents")
                await page.get_by_role("link", name="Getting started").click()
                await expect(page.locator(".markdown h2")).to_have_text("Welcome")
                await shoot(page, "document")

                await page.goto(f"{url}/api/docs")
                await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
                await shoot(page, "api-docs")

                phone = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                mobile = await phone.new_page()
                await mobile.goto(f"{url}/")
                await mobile.get_by_label("Access token").fill(ana)
                await mobile.get_by_role("button", name="Sign in").click()
                await expect(mobile.locator("table.jobs tbody tr").first).to_be_visible()
                await shoot(mobile, "mobile")
                await browser.close()
            tg.cancel_scope.cancel()
        receiver.shutdown()


if __name__ == "__main__":
    anyio.run(main)
