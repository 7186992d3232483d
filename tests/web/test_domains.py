"""Workbooks, sheets, files and documents in Chromium: their pages, a sheet's records, uploads, their actions."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from listener import Event, Listener, Outcome
from plugins.job_handler import job_handler
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio


async def test_a_sheet_pages_its_records_and_shows_new_ones_live(web: Web) -> None:
    api = web.server.platform.api.as_actor("admin")
    fields = [{"key": "name", "label": "Full name"}, {"key": "n", "type": "number"}]
    wb = await api.workbooks.create(name="Voters", sheets=[
        {"name": "People", "slug": "people", "fields": fields},
        {"name": "Streets", "slug": "streets", "fields": [{"key": "street"}]}])
    sheet = wb.sheets[0]
    await api.records.insert(sheet.id, [{"name": f"Person {i}", "n": i} for i in range(60)])

    await web.sign_in(web.server.admin_token, "/workbooks")
    await expect(web.page.locator(f'tr[data-workbook-id="{wb.id}"]')).to_contain_text("People, Streets")
    await web.page.get_by_role("link", name="Voters").click()
    await expect(web.page.locator(f'tr[data-sheet-id="{sheet.id}"]')).to_contain_text("60")
    await web.page.get_by_role("link", name="People").click()
    page = web.page
    await expect(page.locator("table.records thead th")).to_have_text(["Full name", "n"])
    await expect(page.locator("table.records tbody tr")).to_have_count(50)
    await expect(page.get_by_text("1–50 of 60 records")).to_be_visible()
    await page.get_by_role("button", name="Next ›").click()
    await expect(page.locator("table.records tbody tr")).to_have_count(10)
    await expect(page.locator("table.records tbody tr").first).to_contain_text("Person 50")

    await api.records.insert(sheet.id, [{"name": "Person 60", "n": 60}])  # a commit elsewhere shows up live
    await expect(page.get_by_text("51–61 of 61 records")).to_be_visible()
    await page.get_by_label("Filter").fill("person 55")
    await expect(page.locator("table.records tbody tr")).to_have_count(1)
    await expect(page.get_by_role("navigation", name="Sheets").get_by_role("link", name="People")).to_have_attribute(
        "aria-current", "page")


async def test_files_upload_download_and_run_their_actions(web: Web) -> None:
    listener = Listener()

    async def import_file(event: Event, tick: object) -> Outcome:
        return Outcome(message="Imported 2 rows.")

    listener.use(job_handler("file:import", import_file))

    @listener.on("job:ready", job="document:summarize")
    async def summarize(event: Event) -> None:
        assert event.context.job_id is not None
        await event.api.jobs.ack(event.context.job_id)
        await event.api.jobs.complete(event.context.job_id, outcome=Outcome(message="Summarized in 3 lines."))

    api = web.server.platform.api.as_actor("admin")
    await api.files.upload(b"name\nAnn\nBo\n", name="voters.csv", mime_type="text/csv",
                           actions=[{"operation": "import", "label": "Import", "primary": True}])
    doc = await api.documents.create(title="Guide", body="Press *Summarize*.",
                                     actions=[{"operation": "summarize", "label": "Summarize", "mode": "background"}])
    async with web.server.platform.running(listener):
        await web.sign_in(web.server.admin_token, "/files")
        page = web.page
        await page.get_by_label("Upload a file").set_input_files(
            files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": b"name\nCy\n"}])
        await page.get_by_role("button", name="Upload", exact=True).click()
        await expect(page.locator(".toast")).to_contain_text("Uploaded people.csv.")
        row = page.locator("table.files tbody tr").filter(has_text="people.csv")
        await expect(row).to_contain_text("8 B")
        name, data = await web.download(row.get_by_role("button", name="Download people.csv").click)
        assert (name, data) == ("people.csv", b"name\nCy\n")
        uploaded = [f for f in await api.files.list() if f.name == "people.csv"]
        assert len(uploaded) == 1 and uploaded[0].created_by == "admin"

        voters = page.locator("table.files tbody tr").filter(has_text="voters.csv")
        await voters.get_by_role("button", name="Import").click()  # foreground, no acknowledge: a note at the end
        await expect(page.locator(".toast").filter(has_text="Import: Imported 2 rows.")).to_be_visible()
        await expect(page.locator("dialog")).to_have_count(0)

        await web.goto(f"/documents/{doc.id}")
        await expect(page.locator(".markdown em")).to_have_text("Summarize")
        await page.get_by_role("button", name="Summarize").click()
        await expect(page.locator(".toast").filter(has_text="Summarize: Summarized in 3 lines.")).to_be_visible()
    jobs = await web.server.platform.api.jobs.list(status=["complete"])
    assert sorted(j.job for j in jobs.items) == ["document:summarize", "file:import"]
