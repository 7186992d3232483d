"""Queues and workers in Chromium: the "no worker is listening" note comes and goes with workers, the queue
page draws its chart, and an admin edits a queue's limits (js/views/queues.js, js/listening.js)."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import expect

from tests.conftest import ManualClock
from tests.platform.test_stream import stream
from tests.web.conftest import Web

pytestmark = pytest.mark.anyio

NOTE = "No worker is listening for workbook:export"


async def test_the_note_appears_while_no_worker_listens_and_goes_when_one_connects(web: Web) -> None:
    server = web.server
    mia = await server.token("mia")
    job = await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")
    other = await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="import")
    await web.sign_in(mia)
    row = web.row(job.id)
    await expect(row.locator(".unheard")).to_have_text(NOTE)
    await expect(web.row(other.id).locator(".unheard")).to_have_text("No worker is listening for workbook:import")
    await web.page.evaluate("window.stillTheSamePage = true")

    # A worker for workbook:export only (its job:ready filters, said without asking for the jobs again, so the
    # job stays ready): the row learns of it from the stream, with no reload.
    agent = await server.token("robot", "agent")
    filters = json.dumps([[{"job": "workbook:export"}]])
    async with stream(server, agent, {"agent": "exporter", "topic": "job:ready", "listens": filters}) as worker:
        await worker.ready()
        await expect(row.locator(".unheard")).to_have_count(0)
        await expect(row).to_have_attribute("data-status", "ready")
        await expect(web.row(other.id).locator(".unheard")).to_be_visible()  # nobody takes the import

        await web.goto(f"/jobs/{job.id}")
        await expect(web.page.get_by_role("heading", level=1)).to_contain_text("workbook:export")
        await expect(web.page.locator(".listening")).to_be_hidden()
    # The worker went away: the job's page says so again, live.
    await expect(web.page.locator(".listening .unheard")).to_have_text(NOTE)
    await expect(web.page.locator(".listening a")).to_have_count(0)  # a member has no queues page to go to
    await web.goto("/jobs")
    await expect(row.locator(".unheard")).to_have_text(NOTE)
    assert await web.page.evaluate("window.stillTheSamePage") is True
    await expect(web.page.get_by_role("link", name="Queues")).to_be_hidden()


async def test_the_queue_page_draws_what_ended_per_minute_and_lists_its_workers(web: Web, clock: ManualClock) -> None:
    api = web.server.platform.api
    jobs = [await api.jobs.create(type="workbook", operation="export") for _ in range(5)]
    for job in jobs[:2]:  # two complete in the first minute
        await api.jobs.ack(job.id)
        await api.jobs.complete(job.id, outcome={"message": "Done."})
    clock.advance(3 * 60)
    await api.jobs.ack(jobs[2].id)
    await api.jobs.complete(jobs[2].id, outcome={"message": "Done."})
    await api.jobs.ack(jobs[3].id)
    await api.jobs.fail(jobs[3].id, error="Broken", retryable=False)
    clock.advance(45)

    await web.sign_in(web.server.admin_token)
    await web.page.get_by_role("link", name="Queues").click()
    listed = web.page.locator('table.queues tr[data-job="workbook:export"]')
    await expect(listed).to_have_attribute("data-unheard", "true")
    await expect(listed.locator(".unheard")).to_have_text(NOTE)
    await expect(listed.locator('[data-count="ready"]')).to_have_text("1")
    await listed.get_by_role("link", name="workbook:export").click()

    chart = web.page.locator("svg.throughput")
    await expect(chart).to_have_attribute("aria-label", "3 completed and 1 failed in the last hour")
    completed = chart.locator("rect.bar.completed")
    await expect(completed).to_have_count(2)
    bars = [await completed.nth(i).get_attribute("data-minute") for i in range(2)]
    counts = [await completed.nth(i).get_attribute("data-count") for i in range(2)]
    assert (bars, counts) == (["56", "59"], ["2", "1"])  # 12:00 and 12:03 of an hour ending 12:03
    heights = [float(await completed.nth(i).get_attribute("height") or 0) for i in range(2)]
    assert heights[0] == pytest.approx(2 * heights[1])  # the busiest minute fills the chart
    failed = chart.locator("rect.bar.failed")
    await expect(failed).to_have_count(1)
    await expect(failed).to_have_attribute("data-minute", "59")
    assert float(await failed.get_attribute("y") or 0) < float(await completed.nth(1).get_attribute("y") or 0)
    await expect(failed.locator("title")).to_contain_text("1 failed")
    await expect(web.page.locator('dd[data-status="complete"]')).to_have_text("3")
    await expect(web.page.locator('[data-field="oldestReady"] [data-seconds]')).to_have_attribute("data-seconds", "225")
    await expect(web.page.locator(".listening .unheard")).to_have_text(NOTE)

    # A job ending redraws the chart; a worker connecting fills the workers table and clears the note.
    await api.jobs.ack(jobs[4].id)
    await api.jobs.complete(jobs[4].id, outcome={"message": "Done."})
    await expect(chart.locator('rect.bar.completed[data-minute="59"]')).to_have_attribute("data-count", "2")
    more = await api.jobs.create(type="workbook", operation="export")
    await expect(web.page.locator('dd[data-status="ready"]')).to_have_text("1")
    agent = await web.server.token("robot", "agent")
    filters = json.dumps([[{"job": "workbook:export"}]])
    async with stream(web.server, agent, {"agent": "exporter", "topic": "job:ready", "listens": filters}) as worker:
        await worker.ready()
        workers = web.page.locator("table.workers tbody tr")
        await expect(workers).to_have_count(1)
        await expect(workers).to_contain_text("exporter")
        await expect(workers).to_contain_text("robot")
        await expect(web.page.locator(".listening .unheard")).to_have_count(0)
    await expect(web.page.locator("table.workers")).to_have_count(0)
    await expect(web.page.locator(".listening .unheard")).to_have_text(NOTE)
    assert more.status == "ready"


async def test_an_admin_edits_a_queues_limits_and_an_agent_only_reads_them(web: Web) -> None:
    platform = web.server.platform
    await platform.api.jobs.create(type="workbook", operation="export")
    web.allow("422")  # the refused rate's answer
    await web.sign_in(web.server.admin_token, "/queues/workbook:export")
    form = web.page.get_by_role("form", name="Limits of workbook:export")
    await form.get_by_label("Max running at once").fill("1")
    await form.get_by_label("Starts per second").fill("0")
    await form.get_by_role("button", name="Save limits").click()
    await expect(form.locator(".form-error")).to_contain_text("startsPerSecond")  # the server's words
    assert list(await platform.api.jobs.settings()) == [], "nothing was saved"

    await form.get_by_label("Starts per second").fill("2.5")
    await form.get_by_label("Timeout (seconds)").fill("600")
    await form.get_by_role("button", name="Save limits").click()
    await expect(web.page.locator("#toasts")).to_contain_text("Limits of workbook:export saved.")
    await expect(form.locator(".form-error")).to_have_text("")
    [saved] = await platform.api.jobs.settings()
    assert (saved.job, saved.max_running, saved.starts_per_second, saved.timeout_seconds) == \
        ("workbook:export", 1, 2.5, 600)
    await web.goto("/queues")
    await expect(web.page.locator('table.queues tr[data-job="workbook:export"]')).to_contain_text(
        "one at a time, 2.5/s, timeout 600 s")

    agent = await web.server.token("robot", "agent")
    await web.page.get_by_role("button", name="Sign out").click()
    await web.sign_in(agent, "/queues/workbook:export")
    form = web.page.get_by_role("form", name="Limits of workbook:export")
    await expect(form.get_by_label("Max running at once")).to_have_value("1")
    await expect(form.get_by_label("Max running at once")).to_be_disabled()
    await expect(form.get_by_role("button", name="Save limits")).to_have_count(0)
    await expect(form).to_contain_text("Only an admin may change them.")
