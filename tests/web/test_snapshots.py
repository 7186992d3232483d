"""A snapshot in the browser: an outcome's `snapshot` button opens it, its records are marked with what
changed since, and Restore asks first, then puts the sheet back."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from listener import Event, Listener, Outcome
from plugins.job_handler import Tick, job_handler
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio

PEOPLE = [{"name": "Ann", "email": "ann@example.com"}, {"name": "Bo", "email": "bo@example.com"},
          {"name": "Cy", "email": "cy@example.com"}]


async def tidy(event: Event, tick: Tick) -> Outcome:
    """Snapshot the sheet, then change it: what a careful bulk edit does, so that it can be undone."""
    sheet_id = event.context.sheet_id
    assert sheet_id is not None
    snapshot = await event.api.snapshots.create(sheet_id, label="Before tidy")
    ann, bo, _ = (await event.api.records.get(sheet_id)).items
    await event.api.records.update(sheet_id, [{"id": ann.id, "values": {"email": "ANN@EXAMPLE.COM"}}])
    await event.api.records.delete(sheet_id, [bo.id])
    await event.api.records.insert(sheet_id, [{"name": "Dee", "email": "dee@example.com"}])
    return Outcome(message="Tidied 3 records.", acknowledge=True,
                   next={"type": "snapshot", "snapshotId": snapshot.id, "label": "See the snapshot"})


async def test_the_snapshot_button_opens_it_marked_and_restore_asks_first(web: Web) -> None:
    api = web.server.platform.api.as_actor("admin")
    workbook = await api.workbooks.create(name="Contacts", sheets=[{
        "name": "People", "slug": "people", "fields": [{"key": "name"}, {"key": "email"}],
        "actions": [{"operation": "tidy", "label": "Tidy"}]}])
    sheet = workbook.sheets[0]
    before = await api.records.insert(sheet.id, PEOPLE)
    page = web.page
    async with web.server.platform.running(Listener().use(job_handler("sheet:tidy", tidy))):
        await web.sign_in(web.server.admin_token, f"/sheets/{sheet.id}")
        await page.get_by_role("button", name="Tidy", exact=True).click()
        outcome = page.locator("dialog.outcome")
        await expect(outcome).to_contain_text("Tidied 3 records.")
        async with page.expect_response(lambda r: r.url.endswith("/outcome/acknowledge")):
            await outcome.get_by_role("button", name="See the snapshot").click()

    (snapshot,) = await api.snapshots.list(sheet_id=sheet.id)
    assert page.url.endswith(f"#/snapshots/{snapshot.id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Before tidy")
    await expect(page.locator("[data-changes]")).to_have_text("Since this snapshot: 1 changed, 1 removed, 1 added.")
    rows = page.locator("table.snapshot-records tbody tr")
    await expect(rows).to_have_count(4)
    await expect(rows.nth(0)).to_have_attribute("data-change", "changed")
    changed = rows.nth(0).locator("td.differs")  # only the value that changed, with the snapshot's and today's
    await expect(changed.locator(".then")).to_have_text("ann@example.com")
    await expect(changed.locator(".now")).to_have_text("→ ANN@EXAMPLE.COM")
    await expect(changed).to_have_attribute("title", "Now: ANN@EXAMPLE.COM")
    await expect(rows.nth(0).locator("td").nth(1)).to_have_text("Ann")
    await expect(rows.nth(1)).to_have_attribute("data-change", "removed")
    await expect(rows.nth(1)).to_contain_text("Removed since")
    await expect(rows.nth(1)).to_contain_text("Bo")
    await expect(rows.nth(2)).to_have_attribute("data-change", "unchanged")
    await expect(rows.nth(3)).to_have_attribute("data-change", "added")
    await expect(rows.nth(3)).to_contain_text("Dee")
    assert await page.locator("table.snapshot-records input, table.snapshot-records [contenteditable]").count() == 0

    restore = page.get_by_role("button", name="Restore", exact=True)
    await restore.click()
    confirm = page.get_by_role("dialog")
    await expect(confirm).to_contain_text("1 record added since will be deleted")
    await expect(confirm).to_contain_text("1 record removed since will come back")
    await expect(confirm).to_contain_text("1 record changed since will get its values back")
    await confirm.get_by_role("button", name="Cancel").click()  # asked first: cancelling changes nothing
    await expect(confirm).to_have_count(0)
    assert (await api.records.get(sheet.id)).total == 3
    assert [r.values["name"] for r in (await api.records.get(sheet.id)).items] == ["Ann", "Cy", "Dee"]

    await restore.click()
    async with page.expect_response(lambda r: r.url.endswith("/restore")) as answer:
        await confirm.get_by_role("button", name="Restore").click()
    assert (await answer.value).status == 200
    await expect(page.locator("[data-changes]")).to_have_text(
        "The sheet is as this snapshot has it: nothing changed since.")
    await expect(page.locator('table.snapshot-records tbody tr[data-change="unchanged"]')).to_have_count(3)
    after = (await api.records.get(sheet.id)).items
    assert [(r.id, r.values) for r in after] == [(r.id, r.values) for r in before]

    await web.goto(f"/sheets/{sheet.id}")  # the sheet lists its snapshots, each a link to it
    link = page.locator(".snapshot-list").get_by_role("link", name="Before tidy")
    await expect(link).to_have_attribute("href", f"#/snapshots/{snapshot.id}")


async def test_a_member_sees_a_snapshot_but_no_restore_button(web: Web) -> None:
    api = web.server.platform.api.as_actor("admin")
    workbook = await api.workbooks.create(name="Contacts", sheets=[{"name": "People", "fields": [{"key": "name"}]}])
    sheet = workbook.sheets[0]
    await api.records.insert(sheet.id, [{"name": "Ann"}])
    snapshot = await api.snapshots.create(sheet.id, label="Nightly")
    await api.records.insert(sheet.id, [{"name": "Bo"}])
    await web.sign_in(await web.server.token("alice"), f"/snapshots/{snapshot.id}")
    await expect(web.page.get_by_role("heading", level=1)).to_have_text("Nightly")
    await expect(web.page.locator("table.snapshot-records tbody tr")).to_have_count(2)
    await expect(web.page.locator('tr[data-change="added"]')).to_contain_text("Bo")
    await expect(web.page.get_by_text("Only admins and agents may restore a snapshot.")).to_be_visible()
    assert await web.page.get_by_role("button", name="Restore").count() == 0
