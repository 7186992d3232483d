"""The jobs grid in Chromium: live status counts, search by id and metadata, sorting, row menus, bulk moves
of many jobs, and all of it by keyboard alone."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, Page, expect

from listener import JobStatus
from tests.conftest import ManualClock
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio


def count(web: Web, status: str) -> Locator:
    """The count on a status tab (`all` for every job)."""
    return web.page.locator(f'.tabs [data-count="{status}"]')


async def tab_to(page: Page, target: Locator, presses: int = 120) -> None:
    """Press Tab until `target` has the focus, as a person without a mouse would."""
    for _ in range(presses):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


async def test_the_tabs_count_jobs_live_as_they_move(web: Web, clock: ManualClock) -> None:
    api = web.server.platform.api
    admin = api.as_actor("admin")
    jobs = [await admin.jobs.create(type="voters", operation="geocode", info="Accepted") for _ in range(3)]
    await web.sign_in(web.server.admin_token)
    await expect(count(web, "ready")).to_have_text("3")
    await expect(count(web, "all")).to_have_text("3")
    await expect(count(web, "executing")).to_have_text("0")

    await api.jobs.ack(jobs[0].id, info="Geocoding")
    await expect(count(web, "ready")).to_have_text("2")
    await expect(count(web, "executing")).to_have_text("1")
    clock.advance(90)
    await api.jobs.fail(jobs[0].id, error="Geocoder unavailable")
    await expect(count(web, "executing")).to_have_text("0")
    await expect(count(web, "failed")).to_have_text("1")
    row = web.row(jobs[0].id)
    await expect(row.locator("td").nth(3)).to_have_text("Geocoder unavailable")  # the error, not its last info
    started = row.locator("td").nth(4).locator("time")
    await expect(started).to_have_text(re.compile(r"ago|now"))  # relative, the full time on hover
    await expect(started).to_have_attribute("title", re.compile(r"\d{4}|\d:\d\d"))
    await expect(row.locator("td").nth(9)).to_have_text("0:01:30")  # ΔT
    ready = web.row(jobs[1].id)
    await expect(ready.locator(".st-ready")).to_be_visible()

    await web.page.get_by_role("tab", name=re.compile("^Failed")).click()
    await expect(web.page.locator("table.jobs tbody tr")).to_have_count(1)
    await expect(web.page.get_by_role("tab", name=re.compile("^Failed"))).to_have_attribute("aria-selected", "true")
    assert "status=failed" in web.page.url
    await api.jobs.cancel(jobs[2].id)
    await expect(count(web, "cancelled")).to_have_text("1")
    await expect(count(web, "ready")).to_have_text("1")


async def test_search_finds_a_job_by_id_by_metadata_and_by_text(web: Web) -> None:
    admin = web.server.platform.api.as_actor("admin")
    tagged = await admin.jobs.create(type="voters", operation="geocode", metadata={"customer": "acme", "batch": 7})
    others = [await admin.jobs.create(type="voters", operation="geocode", metadata={"customer": "zenith"})
              for _ in range(3)]
    broken = await admin.jobs.ack((await admin.jobs.create(type="sheet", operation="tidy")).id)
    await web.server.platform.api.jobs.fail(broken.id, error="Disk quota exceeded")
    await web.sign_in(web.server.admin_token)
    rows = web.page.locator("table.jobs tbody tr")
    await expect(rows).to_have_count(5)
    search = web.page.get_by_label("Search")

    await search.fill(tagged.id)
    await expect(rows).to_have_count(1)
    await expect(web.row(tagged.id)).to_be_visible()
    assert f"q={tagged.id}" in web.page.url
    await search.fill("customer=zenith")
    await expect(rows).to_have_count(3)
    for job in others:
        await expect(web.row(job.id)).to_be_visible()
    await search.fill("customer=acme batch=7")
    await expect(rows).to_have_count(1)
    await expect(web.row(tagged.id)).to_be_visible()
    await search.fill("quota")
    await expect(rows).to_have_count(1)
    await expect(web.row(broken.id)).to_contain_text("Disk quota exceeded")
    await search.fill("no such thing")
    await expect(web.page.get_by_text("No jobs match these filters.")).to_be_visible()
    await search.fill("")
    await expect(rows).to_have_count(5)

    await web.page.get_by_label("Sort").select_option("-ended")
    await expect(rows).to_have_count(1)  # sorted by end: the jobs that ended
    await web.page.get_by_label("Sort").select_option("created")
    await expect(rows.first).to_have_attribute("data-job-id", tagged.id)  # oldest first
    await web.page.reload()
    await expect(web.page.get_by_label("Sort")).to_have_value("created")


async def test_a_bulk_cancel_of_200_matching_jobs_changes_exactly_those(web: Web) -> None:
    api = web.server.platform.api
    admin = api.as_actor("admin")
    batch = [await admin.jobs.create(type="voters", operation="geocode", metadata={"batch": "b"}) for _ in range(200)]
    finished = await api.jobs.complete((await api.jobs.ack((await admin.jobs.create(
        type="voters", operation="geocode", metadata={"batch": "b"})).id)).id)
    others = [await admin.jobs.create(type="voters", operation="geocode", metadata={"batch": "c"}) for _ in range(5)]
    await web.sign_in(web.server.admin_token, "/jobs?status=ready&q=batch%3Db")
    page = web.page
    await expect(page.locator("#jobs-summary")).to_have_text("1–25 of 200 jobs")
    await page.get_by_label("Select every row on this page").check()
    await expect(page.locator(".bulk-count")).to_have_text("25 jobs selected.")
    await page.get_by_role("button", name="Select all 200 jobs matching these filters").click()
    await expect(page.locator(".bulk-count")).to_have_text("All 200 jobs matching these filters are selected.")
    await page.get_by_role("button", name="Cancel…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Cancel 200 jobs?")
    await dialog.get_by_role("button", name="Cancel 200 jobs").click()
    await expect(page.locator(".bulk-result")).to_contain_text("Cancelled 200 of 200 jobs.")
    await expect(count(web, "cancelled")).to_have_text("200")
    await expect(count(web, "ready")).to_have_text("5")
    await expect(page.get_by_text("No jobs match these filters.")).to_be_visible()

    statuses = {j.id: (await api.jobs.get(j.id)).status for j in [*batch, finished, *others]}
    assert {statuses[j.id] for j in batch} == {JobStatus.CANCELLED}
    assert statuses[finished.id] is JobStatus.COMPLETE and {statuses[j.id] for j in others} == {JobStatus.READY}
    for job in batch[:3]:
        assert [e.topic for e in await api.events.list(job_id=job.id)][-1] == "job:cancelled", "its own event"

    # Picked by hand, a finished job among them is refused, and said so.
    await web.goto("/jobs?q=batch%3Db&status=")
    await expect(page.locator("#jobs-summary")).to_have_text("1–25 of 201 jobs")
    await page.get_by_label(f"Select {finished.id}").check()
    await page.get_by_label(f"Select {batch[-1].id}").check()
    await page.get_by_role("button", name="Cancel…").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel 2 jobs").click()
    result = page.locator(".bulk-result")
    await expect(result).to_contain_text("Cancelled 0 of 2 jobs. 2 refused:")
    await expect(result.locator(f'li[data-job-id="{finished.id}"]')).to_contain_text("it is complete")


async def test_a_member_sees_no_selection_and_counts_only_their_own(web: Web) -> None:
    server = web.server
    mia = await server.token("mia")
    await server.platform.api.as_actor("noah").jobs.create(type="voters", operation="geocode")
    mine = await server.platform.api.as_actor("mia").jobs.create(type="voters", operation="geocode")
    await web.sign_in(mia)
    await expect(web.row(mine.id)).to_be_visible()
    await expect(count(web, "all")).to_have_text("1")
    await expect(web.page.locator("input.select-row")).to_have_count(0)
    await expect(web.page.locator(".bulk-bar")).to_have_count(0)


async def test_the_grid_and_its_menus_work_by_keyboard_alone(web: Web) -> None:
    api = web.server.platform.api
    admin = api.as_actor("admin")
    failed = await api.jobs.fail((await api.jobs.ack((await admin.jobs.create(type="sheet", operation="tidy")).id)).id,
                                 error="Boom")
    waiting = await admin.jobs.create(type="sheet", operation="tidy")
    await web.sign_in(web.server.admin_token)
    page = web.page
    await expect(web.row(waiting.id)).to_be_visible()

    all_tab = page.get_by_role("tab", name=re.compile("^All"))
    await tab_to(page, all_tab)
    await page.keyboard.press("ArrowRight")  # to Ready, which it shows at once
    ready_tab = page.get_by_role("tab", name=re.compile("^Ready"))
    await expect(ready_tab).to_be_focused()
    await expect(ready_tab).to_have_attribute("aria-selected", "true")
    await expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    await page.keyboard.press("End")
    await page.keyboard.press("Home")
    await expect(all_tab).to_have_attribute("aria-selected", "true")
    await expect(page.locator("table.jobs tbody tr")).to_have_count(2)

    menu_button = page.get_by_role("button", name=f"Actions for {waiting.id}")
    await tab_to(page, menu_button)
    await page.keyboard.press("Enter")
    menu = page.get_by_role("menu", name=f"Actions for {waiting.id}")
    await expect(menu.get_by_role("menuitem", name="Open job")).to_be_focused()
    await page.keyboard.press("Escape")  # closes, and the focus goes back
    await expect(menu).to_have_count(0)
    await expect(menu_button).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(menu.get_by_role("menuitem", name="Open job")).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(menu.get_by_role("menuitem", name="Cancel…")).to_be_focused()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Cancel this job?")
    await page.keyboard.press("Escape")  # asked first: nothing happens when the person says no
    await expect(dialog).to_have_count(0)
    assert (await api.jobs.get(waiting.id)).status is JobStatus.READY
    await expect(menu_button).to_be_focused()
    await page.keyboard.press("Enter")
    await page.keyboard.press("End")
    await expect(menu.get_by_role("menuitem", name="Cancel…")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog.get_by_role("button", name="Cancel job")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(web.row(waiting.id)).to_have_attribute("data-status", "cancelled")
    assert (await api.jobs.get(waiting.id)).status is JobStatus.CANCELLED

    retry_button = page.get_by_role("button", name=f"Actions for {failed.id}")
    await tab_to(page, retry_button)
    await page.keyboard.press("Enter")
    failed_menu = page.get_by_role("menu", name=f"Actions for {failed.id}")
    await expect(failed_menu.get_by_role("menuitem")).to_have_text(["Open job", "Retry"])
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    await expect(web.row(failed.id)).to_have_attribute("data-status", "ready")

    box = page.get_by_label(f"Select {failed.id}")
    await tab_to(page, box)
    await page.keyboard.press("Space")
    await expect(box).to_be_checked()
    await expect(page.locator(".bulk-count")).to_have_text("1 job selected.")
    await tab_to(page, page.get_by_role("button", name="Delete…"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog").get_by_role("button", name="Cancel", exact=True)).to_be_visible()
    await page.keyboard.press("Enter")  # the primary button has the focus: delete it
    await expect(page.locator(".bulk-result")).to_contain_text("Deleted 1 of 1 jobs.")
    await expect(web.row(failed.id)).to_have_count(0)

    open_button = page.get_by_role("button", name=f"Actions for {waiting.id}")
    await tab_to(page, open_button)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("menu", name=f"Actions for {waiting.id}").get_by_role("menuitem")).to_have_text(
        ["Open job"])  # cancelled: nothing more to do to it
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("sheet:tidy")
    assert page.url.endswith(f"#/jobs/{waiting.id}")
