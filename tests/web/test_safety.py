"""Safe by construction: what listeners and users wrote is text, the CSP holds, and no page logs an error."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.web.conftest import EXPECTED_CSP, Web

pytestmark = pytest.mark.anyio

XSS = "<img src=x onerror=alert(1)>"


async def seed(web: Web) -> dict[str, str]:
    """One of everything, each carrying markup where a person or a listener writes text."""
    admin = web.server.platform.api.as_actor("admin")
    space = await admin.spaces.create(name="Ops")
    ready = await admin.jobs.create(type="workbook", operation="export", info=XSS, input={"html": XSS})
    failed = await admin.jobs.create(type="workbook", operation="import")
    await admin.jobs.ack(failed.id)
    await admin.jobs.log_error(failed.id, item=XSS, message=f"bad value {XSS}")
    await admin.jobs.fail(failed.id, error=XSS)
    wb = await admin.workbooks.create(
        name=XSS, space_id=space.id, labels=[XSS],
        sheets=[{"name": XSS, "slug": "people", "fields": [{"key": "name", "label": XSS}, {"key": "email"}]}],
        actions=[{"operation": "export", "label": XSS, "tooltip": XSS, "confirm": True, "description": XSS}])
    sheet = wb.sheets[0]
    await admin.records.insert(sheet.id, [{"name": XSS, "email": "<script>alert(2)</script>"}])
    snapshot = await admin.snapshots.create(sheet.id, label=XSS)
    await admin.records.insert(sheet.id, [{"name": XSS, "email": XSS}])  # so the snapshot marks an added row too
    file = await admin.files.upload(b"a,b\n", name=f"{XSS}.csv", mime_type="text/csv", space_id=space.id)
    doc = await admin.documents.create(
        title=XSS, space_id=space.id,
        body=f"# {XSS}\n\n<script>alert(2)</script> [click me](javascript:alert(3)) **{XSS}** [docs](https://example.com/)")
    return {"space": space.id, "ready": ready.id, "failed": failed.id, "wb": wb.id, "sheet": sheet.id, "file": file.id,
            "doc": doc.id, "snapshot": snapshot.id}


async def assert_inert(web: Web) -> None:
    await expect(web.page.get_by_text(XSS).first).to_be_visible()
    assert await web.page.locator("img").count() == 0, "markup was parsed as HTML"
    assert await web.page.locator("body script:not([src])").count() == 0
    assert await web.page.locator('a[href^="javascript:"]').count() == 0
    assert await web.page.evaluate("document.querySelectorAll('[onerror], [onclick], [onload]').length") == 0


async def test_markup_written_by_listeners_and_users_is_shown_as_text(web: Web) -> None:
    ids = await seed(web)
    await web.sign_in(web.server.admin_token)
    await expect(web.row(ids["ready"]).locator("td.info")).to_have_text(XSS)
    await assert_inert(web)
    for route in [f"/jobs/{ids['ready']}", f"/jobs/{ids['failed']}", "/workbooks", f"/workbooks/{ids['wb']}",
                  f"/sheets/{ids['sheet']}", f"/snapshots/{ids['snapshot']}", "/files", f"/files/{ids['file']}",
                  "/documents", f"/documents/{ids['doc']}", f"/spaces/{ids['space']}"]:
        await web.goto(route)
        await expect(web.page.locator("main")).not_to_have_attribute("aria-busy", "true")
        await assert_inert(web)
    # The document's Markdown: its http(s) link is a link, its javascript: one is not, its <script> is text.
    await web.goto(f"/documents/{ids['doc']}")
    await expect(web.page.get_by_role("link", name="docs")).to_have_attribute("href", "https://example.com/")
    await expect(web.page.locator(".markdown")).to_contain_text("[click me](javascript:alert(3))")
    await expect(web.page.locator(".markdown")).to_contain_text("<script>alert(2)</script>")
    # An action's tooltip and its confirmation are text too; cancelling starts nothing.
    await web.goto(f"/workbooks/{ids['wb']}")
    await web.page.get_by_role("button", name=XSS).first.click()
    dialog = web.page.get_by_role("dialog")
    await expect(dialog).to_contain_text(XSS)
    await assert_inert(web)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    assert (await web.server.platform.api.jobs.list(type=["workbook"], operation=["export"])).total == 1


async def test_an_outcome_message_with_markup_is_text(web: Web) -> None:
    admin = web.server.platform.api.as_actor("admin")
    job = await admin.jobs.create(type="workbook", operation="export")
    await web.sign_in(web.server.admin_token)
    await admin.jobs.ack(job.id)
    await admin.jobs.complete(job.id, outcome={"heading": XSS, "message": XSS, "acknowledge": True,
                                               "next": {"type": "url", "url": "https://example.com/", "label": XSS}})
    dialog = web.page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading")).to_have_text(XSS)
    await expect(dialog.locator(".dlg-message")).to_have_text(XSS)
    await expect(dialog.get_by_role("button", name=XSS)).to_be_visible()
    await assert_inert(web)
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_have_count(0)


async def test_every_page_loads_with_the_csp_and_no_console_errors(web: Web) -> None:
    ids = await seed(web)
    response = await web.page.goto(f"{web.server.url}/")
    assert response is not None
    assert await response.header_value("content-security-policy") == EXPECTED_CSP
    assert await response.header_value("x-content-type-options") == "nosniff"
    await web.sign_in(web.server.admin_token)
    routes = ["/jobs", f"/jobs/{ids['failed']}", "/workbooks", f"/workbooks/{ids['wb']}", f"/sheets/{ids['sheet']}",
              f"/sheets/{ids['sheet']}?hidden=email", f"/snapshots/{ids['snapshot']}", "/files",
              f"/files/{ids['file']}", "/documents", f"/documents/{ids['doc']}", f"/spaces/{ids['space']}",
              f"/spaces/{ids['space']}/files", "/queues", "/queues/workbook:export", "/nowhere"]
    for route in routes:
        await web.goto(route)
        await expect(web.page.locator("main h1").first).to_be_visible()
        await expect(web.page.locator("main")).not_to_have_attribute("aria-busy", "true")
    await expect(web.page.get_by_role("heading", name="Page not found")).to_be_visible()
    # A narrow screen gets the same pages, laid out for it.
    await web.page.set_viewport_size({"width": 390, "height": 844})
    await web.goto("/jobs")
    await expect(web.page.get_by_role("navigation", name="Main")).to_be_visible()
    width = await web.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing spills past a phone's width (wide tables scroll in their own box)"
    web.assert_clean()


async def test_the_page_opens_only_web_and_in_app_urls(web: Web) -> None:
    """The models refuse other schemes already; the page checks again before it opens anything."""
    await web.sign_in(web.server.admin_token)
    checked = await web.page.evaluate("""async (base) => {
        const { safeUrl } = await import("/static/js/dom.js");
        const urls = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\\tscript:alert(1)", " javascript:alert(1)",
                      "data:text/html,<script>alert(1)</script>", "vbscript:x", "file:///etc/passwd", "",
                      "/api/v1/jobs/jb_1/data.csv", "#/jobs", "https://example.com/a?b=c", "http://example.com/"];
        return urls.map((u) => { const url = safeUrl(u); return url && url.href.replace(base, "BASE"); });
    }""", web.server.url)
    assert checked == [None, None, None, None, None, None, None, None, "BASE/api/v1/jobs/jb_1/data.csv",
                       "BASE/#/jobs", "https://example.com/a?b=c", "http://example.com/"]
