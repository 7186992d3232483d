"""The webhooks page in Chromium: the admin's webhooks, their latest deliveries (a 200, a connection error), pause."""

from __future__ import annotations

import socket

import pytest
from playwright.async_api import expect

from tests.platform.test_webhooks import receiving
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio


async def test_the_page_lists_webhooks_and_their_deliveries(web: Web) -> None:
    api, page = web.server.platform.api, web.page
    web.allow(r"403|Forbidden")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/gone"
    async with receiving() as receiver:
        good = (await api.webhooks.create(url=f"{receiver.url}/ok", topics=["job:created"],
                                          description="<b>not markup</b>")).webhook
        bad = (await api.webhooks.create(url=closed, topics=["job:created"], filter={"job": "workbook:*"})).webhook
        assert web.server.platform.deliverer is not None
        for w in (good, bad):
            await web.server.platform.deliverer.wait_delivering(w.id)
        await api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/ok", 1)

        await web.sign_in(web.server.admin_token, "/webhooks")
        await expect(page.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")
        rows = page.locator("table.webhooks tbody tr")
        await expect(rows).to_have_count(2)
        first = page.locator(f'tr[data-webhook-id="{good.id}"]')
        await expect(first).to_contain_text(f"{receiver.url}/ok")
        await expect(first.locator(".muted")).to_have_text("<b>not markup</b>")  # text, never HTML
        deliveries = page.locator("table.deliveries tbody")
        await expect(deliveries).to_contain_text("200")
        await expect(deliveries).to_contain_text("job:created")

        second = page.locator(f'tr[data-webhook-id="{bad.id}"]')
        await second.get_by_role("button", name="Deliveries").click()
        await expect(page.locator("section[aria-label=Deliveries] h2")).to_contain_text(closed)
        await expect(deliveries.locator(".tag.fail").first).to_contain_text("Connect")
        await second.get_by_role("button", name="Pause").click()
        await expect(second.locator("[data-status]")).to_have_text("paused")
        assert (await api.webhooks.get(bad.id)).status == "paused"
        await second.get_by_role("button", name="Resume").click()
        await expect(second.locator("[data-status]")).to_have_text("active")
