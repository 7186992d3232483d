"""A job_handler job that fails: the person who pressed the button sees the error's message in the outcome
dialog, as in Flatfile, where the plugin fails the job with `{outcome: {message}}`."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from listener import Event, Listener
from plugins.job_handler import job_handler
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio


async def test_a_handler_that_raises_shows_its_message_in_the_outcome_dialog(web: Web) -> None:
    async def geocode(event: Event, tick: object) -> None:
        raise RuntimeError("The address service refused the API key.")

    api = web.server.platform.api.as_actor("admin")
    workbook = await api.workbooks.create(name="Voters", actions=[{"operation": "geocode", "label": "Geocode"}])
    listener = Listener().use(job_handler("workbook:geocode", geocode))
    async with web.server.platform.running(listener):
        await web.sign_in(web.server.admin_token, f"/workbooks/{workbook.id}")
        await web.page.get_by_role("button", name="Geocode", exact=True).click()
        outcome = web.page.locator("dialog.outcome")
        await expect(outcome.get_by_role("heading")).to_have_text("Job failed")
        await expect(outcome).to_contain_text("The address service refused the API key.")
        async with web.page.expect_response(lambda r: r.url.endswith("/outcome/acknowledge")) as answer:
            await outcome.get_by_role("button", name="Close").click()
        assert (await answer.value).status == 200
    (job,) = (await api.jobs.list(operation=["geocode"])).items
    assert job.status == "failed" and job.outcome_acknowledged_at is not None
