"""A job's page in Chromium: its attempts as a timeline, the empty fields left out, the trail ending live with
the job's last event, and every control reached and used with the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.conftest import ManualClock
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio


async def test_a_retry_that_runs_shows_the_first_attempt_s_failure_in_its_own_entry(web: Web,
                                                                                    clock: ManualClock) -> None:
    server = web.server
    platform = server.platform
    first, second = platform.api.as_actor("agent:geocoder-1"), platform.api.as_actor("agent:geocoder-2")
    job = await platform.api.as_actor("admin").jobs.create(
        type="sheet", operation="geocode", retry={"max_attempts": 3, "base_seconds": 60, "jitter": 0})
    await first.jobs.ack(job.id)
    clock.advance(5)
    await first.jobs.fail(job.id, error="Geocoder unavailable", retryable=True)
    clock.advance(60)
    await platform.scheduler.sweep()  # the backoff is over: ready again
    await second.jobs.ack(job.id, info="Geocoding again")

    await web.sign_in(server.admin_token, f"/jobs/{job.id}")
    page = web.page
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Running")
    attempts = page.locator("ol.attempts > li")
    await expect(attempts).to_have_count(2)
    one, two = attempts.nth(0), attempts.nth(1)
    await expect(one).to_have_attribute("data-result", "retrying")
    await expect(one.locator(".attempt-failure")).to_contain_text("Failure (error)")
    await expect(one.locator(".attempt-failure")).to_contain_text("Geocoder unavailable")
    await expect(one.locator('dd[data-attempt-field="worker"]')).to_have_text("agent:geocoder-1")
    await expect(one.locator('dd[data-attempt-field="duration"]')).to_have_text("0:00:05")
    await expect(two).to_have_attribute("data-result", "running")
    await expect(two.locator('dd[data-attempt-field="worker"]')).to_have_text("agent:geocoder-2")
    await expect(two.locator('dd[data-attempt-field="endedAt"]')).to_have_count(0)
    await expect(two.locator(".attempt-failure")).to_have_count(0)
    # The old failure is nowhere above the running retry: only in attempt 1.
    await expect(page.locator(".failure")).to_have_count(0)
    await expect(page.get_by_text("Geocoder unavailable")).to_have_count(2)  # attempt 1, and its job:failed
    await expect(page.locator(".trail").get_by_text("Geocoder unavailable")).to_have_count(1)

    # The second attempt ends live: its entry and the trail follow.
    clock.advance(2)
    await second.jobs.complete(job.id)
    await expect(two).to_have_attribute("data-result", "complete")
    await expect(two.locator('dd[data-attempt-field="duration"]')).to_have_text("0:00:02")
    await expect(page.locator(".trail li").last).to_have_attribute("data-topic", "job:completed")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Complete")


async def test_empty_fields_are_left_out_and_the_trail_ends_with_the_last_event_live(web: Web) -> None:
    server = web.server
    api = server.platform.api.as_actor("admin")
    job = await api.jobs.create(type="workbook", operation="export")

    await web.sign_in(server.admin_token, f"/jobs/{job.id}")
    page = web.page
    details = page.locator("dl.fields").first
    await expect(page.locator('dd[data-field="id"]')).to_have_text(job.id)
    await expect(page.locator('dd[data-field="status"]')).to_have_text("Ready")
    for empty in ("info", "source", "destination", "startedAt", "finishedAt", "duration", "nextAttemptAt",
                  "leaseExpiresAt", "metadata", "predecessorIds", "checkpoint", "parentId", "estimatedCompletionAt"):
        await expect(page.locator(f'dd[data-field="{empty}"]')).to_have_count(0)
    await expect(details.locator("dd", has_text="—")).to_have_count(0)  # no placeholder dashes in the list
    await expect(page.locator('[data-field="deltaT"]')).to_have_count(0)
    await expect(page.get_by_role("heading", name="Outcome")).to_have_count(0)  # not finished: nothing to say
    await expect(page.get_by_role("heading", name="Error log (0)")).to_be_hidden()
    await expect(page.locator("ol.attempts")).to_have_count(0)
    await expect(page.get_by_text("Not started yet: no worker has acked this job.")).to_be_visible()
    trail = page.locator(".trail li")
    await expect(trail.last).to_have_attribute("data-topic", "job:ready")

    # Each move arrives on the page's stream and goes at the end of the trail, in seq order.
    await api.jobs.ack(job.id, info="Exporting")
    await expect(page.locator('dd[data-field="info"]')).to_have_text("Exporting")  # no longer empty: shown
    await expect(page.locator("ol.attempts > li")).to_have_count(1)
    await api.jobs.update(job.id, progress=50)
    await api.jobs.log_error(job.id, item="row 2", message="bad email")
    await api.jobs.complete(job.id)
    await expect(trail.last).to_have_attribute("data-topic", "job:completed")
    await expect(page.get_by_role("heading", name="Error log (1)")).to_be_visible()
    seqs = [int(s) for s in await trail.evaluate_all("items => items.map(li => li.dataset.seq)")]
    events = await server.platform.api.events.list(after=0, limit=100, job_id=job.id)
    assert seqs == [e.seq for e in events], "every event once, in order, the last one last"


async def test_the_job_page_works_with_the_keyboard_alone(web: Web) -> None:
    server = web.server
    jobs = server.platform.api.jobs
    job = await server.platform.api.as_actor("admin").jobs.create(type="workbook", operation="export")
    await jobs.ack(job.id)
    await jobs.fail(job.id, error="The export broke.")

    await web.sign_in(server.admin_token, f"/jobs/{job.id}")
    page = web.page
    await expect(page.locator(".failure")).to_contain_text("The export broke.")
    retry = page.get_by_role("button", name="Retry")

    async def tab_to(name: str) -> None:
        """Press Tab until the focus is on the control named `name` (at most 40 presses)."""
        for _ in range(40):
            await page.keyboard.press("Tab")
            focused = await page.evaluate(
                "() => { const el = document.activeElement; return (el.getAttribute('aria-label') || el.textContent"
                " || '').trim(); }")
            if focused.startswith(name):
                return
        raise AssertionError(f"Tab never reached {name!r}")

    await page.locator("#main").focus()
    await tab_to("Retry")
    await expect(retry).to_be_focused()
    await page.keyboard.press("Enter")
    # A foreground job's retry opens its progress dialog, focus inside; Escape sends it to the toolbar.
    overlay = page.locator("dialog.job-overlay")
    await expect(overlay).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(overlay).to_have_count(0)
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Ready")
    await page.locator("#main").focus()
    await tab_to("Cancel job")
    await page.keyboard.press("Space")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Cancelled")
    # The trail scrolls on its own, so it takes focus and its name says what it is.
    await page.locator("#main").focus()
    await tab_to("Events")
    await expect(page.get_by_role("list", name="Events")).to_be_focused()
    assert (await jobs.get(job.id)).status.value == "cancelled"


async def test_a_page_open_when_its_token_is_revoked_signs_out(web: Web) -> None:
    server = web.server
    token = await server.token("mia")
    job = await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")
    await web.sign_in(token, f"/jobs/{job.id}")
    await expect(web.page.get_by_role("heading", level=1)).to_contain_text("workbook:export")
    web.allow("401")  # the browser logs the refused requests
    await server.users.revoke("mia")
    await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")  # an event to refuse
    await expect(web.page.locator("#signin")).to_be_visible()
    await expect(web.page.locator("#signin-error")).to_contain_text("the token is no longer accepted")
