"""The schedules page in a real browser: the schedules with their next runs on their own wall clock, kept live as
ticks make jobs; admins pause, resume and delete; members only look."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.web.conftest import Web

pytestmark = pytest.mark.anyio

XSS = "<img src=x onerror=alert(1)>"


async def test_admins_see_pause_resume_and_delete_schedules_kept_live(web: Web) -> None:
    platform = web.server.platform
    admin = platform.api.as_actor("admin")
    nightly = await admin.schedules.create(job="workbook:export", cron="0 3 * * *", timezone="Europe/Berlin",
                                           input={"note": XSS})
    hourly = await admin.schedules.create(job="voters:geocode", cron="@hourly", paused=True)
    page = web.page
    await web.sign_in(web.server.admin_token, "/schedules")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Schedules")
    await expect(page.locator('nav a[data-nav="schedules"]')).to_have_attribute("aria-current", "page")
    row = page.locator(f'table.schedules tr[data-schedule-id="{nightly.id}"]')
    await expect(row).to_contain_text("workbook:export")
    await expect(row).to_contain_text("At 03:00 every day")
    await expect(row).to_contain_text("Europe/Berlin")
    await expect(row.locator("td.next-run time").first).to_contain_text("03:00")  # Berlin's wall clock
    await expect(row.locator("td.next-run time").first).to_have_attribute("datetime", "2026-01-02T02:00:00Z")
    await expect(row.locator(".st-label")).to_have_text("Active")
    paused = page.locator(f'table.schedules tr[data-schedule-id="{hourly.id}"]')
    await expect(paused.locator(".st-label")).to_have_text("Paused")
    await expect(paused.locator("td.next-run")).to_have_text("—")

    # A tick makes its job and the row follows, with a link to the job.
    clock: Any = platform.clock
    clock.current = nightly.next_run_at
    assert await platform.schedule_runner.sweep() == 1
    job_id = (await platform.api.schedules.get(nightly.id)).last_job_id
    await expect(row.locator(f'a[href="#/jobs/{job_id}"]')).to_be_visible()

    await row.get_by_role("button", name=f"Pause workbook:export ({nightly.id})").click()
    await expect(row.locator(".st-label")).to_have_text("Paused")
    assert (await platform.api.schedules.get(nightly.id)).paused
    await row.get_by_role("button", name=f"Resume workbook:export ({nightly.id})").click()
    await expect(row.locator(".st-label")).to_have_text("Active")

    await paused.get_by_role("button", name=f"Delete voters:geocode ({hourly.id})").click()
    dialog = page.locator("dialog[open]")
    await expect(dialog).to_contain_text("will make no more jobs")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(paused).to_have_count(0)
    assert [s.id for s in await platform.api.schedules.list()] == [nightly.id]
    assert await page.locator("img").count() == 0


async def test_members_see_schedules_but_cannot_change_them(web: Web) -> None:
    await web.server.platform.api.as_actor("admin").schedules.create(job="workbook:export", cron="@daily")
    await web.sign_in(await web.server.token("mia", "member"), "/schedules")
    rows = web.page.locator("table.schedules tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("At 00:00 every day")
    assert await rows.first.get_by_role("button").count() == 0
