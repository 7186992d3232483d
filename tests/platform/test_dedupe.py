"""Dedupe keys and debounce windows: `jobs.create(dedupe_key=, debounce_seconds=)` (issue 17, item 4)."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest

from listener import Invalid, JobStatus, Platform
from tests.conftest import ManualClock, Server, postgres_schema
from tests.platform.test_server import API, assert_error, call

S = JobStatus
pytestmark = pytest.mark.anyio


async def topics_of(platform: Platform, job_id: str) -> list[str]:
    return [e.topic for e in await platform.store.read_events(0, 100, job_id)]


async def test_three_creates_in_a_window_make_one_job_started_once_after_the_last_with_its_input(
        platform: Platform, clock: ManualClock) -> None:
    jobs = platform.api.jobs
    first = await jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:7", debounce_seconds=10,
                              input={"n": 1})
    assert (first.dedupe, first.status, first.next_attempt_at) == ("created", S.SCHEDULED, clock.now().replace(
        second=10))
    clock.advance(6)
    second = await jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:7", debounce_seconds=10,
                               input={"n": 2})
    clock.advance(6)  # 12 s after the first: its window would have ended, but the second pushed it back
    await platform.scheduler.sweep()
    third = await jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:7", debounce_seconds=10,
                              input={"n": 3})
    assert {second.id, third.id} == {first.id} and (second.dedupe, third.dedupe) == ("debounced", "debounced")
    assert (third.status, third.input, third.run_at, third.next_attempt_at) == (
        S.SCHEDULED, {"n": 3}, clock.now().replace(second=22), clock.now().replace(second=22))
    clock.advance(9.5)
    await platform.scheduler.sweep()
    assert (await jobs.get(first.id)).status is S.SCHEDULED, "not before the last create's window ends"
    clock.advance(0.5)
    await platform.scheduler.sweep()
    ready = await jobs.get(first.id)
    assert (ready.status, ready.input) == (S.READY, {"n": 3})
    assert (await jobs.list(type="sheet")).total == 1
    events = await platform.store.read_events(0, 100, first.id)
    assert [e.topic for e in events] == ["job:created", "job:updated", "job:updated", "job:ready"]
    updated = events[1].payload
    assert (updated["input"], updated["runAt"], updated["nextAttemptAt"], updated["debounced"]) == (
        {"n": 2}, "2026-01-01T12:00:16+00:00", "2026-01-01T12:00:16+00:00", True)

    started = await jobs.ack(first.id)
    after = await jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:7", debounce_seconds=10,
                              input={"n": 4})
    assert (after.dedupe, after.status, after.input) == ("created", S.SCHEDULED, {"n": 4}) and after.id != first.id
    assert (await jobs.get(started.id)).input == {"n": 3}, "a started job is never changed"


async def test_without_a_window_a_second_create_returns_the_waiting_job_and_emits_nothing(
        platform: Platform) -> None:
    jobs = platform.api.jobs
    first = await jobs.create(type="workbook", operation="export", dedupe_key="wb:1", input={"v": 1})
    head = await platform.store.head()
    again = await jobs.create(type="workbook", operation="export", dedupe_key="wb:1", input={"v": 2})
    assert (first.dedupe, again.dedupe, again.id, again.input) == ("created", "deduplicated", first.id, {"v": 1})
    assert again == await jobs.get(first.id) and again.status is S.READY
    assert await platform.store.head() == head, "a dedupe hit writes and emits nothing"
    other_type = await jobs.create(type="workbook", operation="import", dedupe_key="wb:1")
    other_key = await jobs.create(type="workbook", operation="export", dedupe_key="wb:2")
    assert len({first.id, other_type.id, other_key.id}) == 3, "the key's scope is the type:operation"
    plain = await jobs.create(type="workbook", operation="export")
    assert plain.dedupe is None and plain.dedupe_key is None
    await jobs.ack(first.id)
    new = await jobs.create(type="workbook", operation="export", dedupe_key="wb:1")
    assert (new.dedupe, new.id != first.id) == ("created", True), "once started, the key makes a new job"
    await jobs.fail(first.id, error="boom", retryable=True)
    assert (await jobs.create(type="workbook", operation="export", dedupe_key="wb:1")).id == new.id, \
        "a retried job waiting again does not take its key back"


@pytest.mark.parametrize("status", ["created", "planning", "scheduled", "cancelled"])
async def test_which_statuses_hold_the_key(platform: Platform, clock: ManualClock, status: str) -> None:
    jobs = platform.api.jobs
    blocker = await jobs.create(type="file", operation="scan")
    await jobs.ack(blocker.id)
    kwargs: dict[str, Any] = {
        "created": {"trigger": "manual"}, "planning": {"predecessor_ids": [blocker.id]},
        "scheduled": {"run_at": clock.now().replace(hour=13)}, "cancelled": {}}[status]
    first = await jobs.create(type="file", operation="extract", dedupe_key="k", **kwargs)
    if status == "cancelled":
        await jobs.cancel(first.id)
    assert (await jobs.get(first.id)).status.value == status
    again = await jobs.create(type="file", operation="extract", dedupe_key="k", debounce_seconds=5, input={"x": 1})
    if status == "cancelled":
        assert again.id != first.id and again.dedupe == "created"
    else:
        assert (again.id, again.dedupe, again.input) == (first.id, "debounced", {"x": 1})
        assert again.status.value == status, "only a job waiting for its time is pushed back"


async def test_a_debounce_pushes_a_ready_job_not_yet_acked_back(platform: Platform, clock: ManualClock) -> None:
    jobs = platform.api.jobs
    first = await jobs.create(type="sheet", operation="sync", dedupe_key="s")
    again = await jobs.create(type="sheet", operation="sync", dedupe_key="s", debounce_seconds=30, input={"y": 2})
    assert (again.id, again.status, again.input) == (first.id, S.SCHEDULED, {"y": 2})
    clock.advance(30)
    await platform.scheduler.sweep()
    assert (await jobs.get(first.id)).status is S.READY


@pytest.mark.parametrize(("body", "field"), [
    ({"debounce_seconds": 5}, "debounceSeconds"),
    ({"dedupe_key": "k", "debounce_seconds": 0}, "debounceSeconds"),
    ({"dedupe_key": "k", "debounce_seconds": 7 * 86_400 + 1}, "debounceSeconds"),
    ({"dedupe_key": ""}, "dedupeKey"),
    ({"dedupe_key": "k" * 256}, "dedupeKey"),
])
async def test_bad_dedupe_options_are_invalid_naming_the_field(platform: Platform, body: dict[str, Any],
                                                             field: str) -> None:
    with pytest.raises(Invalid) as raised:
        await platform.api.jobs.create(type="sheet", operation="sync", **body)
    assert field in raised.value.message or field.replace("S", "_s").replace("K", "_k") in raised.value.message


async def test_concurrent_creates_with_one_key_make_one_job(platform: Platform) -> None:
    answers: list[Any] = []

    async def create(n: int, window: float | None) -> None:
        answers.append(await platform.api.jobs.create(type="sheet", operation="race", dedupe_key="one",
                                                      debounce_seconds=window, input={"n": n}))

    for window in (None, 10.0):
        answers.clear()
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(create, n, window)
        assert len({a.id for a in answers}) == 1
        assert sorted(a.dedupe for a in answers) == ["created"] + [
            "deduplicated" if window is None else "debounced"] * 19
        page = await platform.api.jobs.list(type="sheet", operation="race", status=["ready", "scheduled"])
        assert page.total == 1
        await platform.api.jobs.cancel(answers[0].id)


async def test_replicas_on_one_database_make_one_job_for_one_key(clock: ManualClock) -> None:
    async with postgres_schema() as db, Platform.open(db, clock=clock, sweep_interval=None) as a, \
            Platform.open(db, clock=clock, sweep_interval=None) as b:
        answers: list[Any] = []

        async def create(platform: Platform, n: int) -> None:
            answers.append(await platform.api.jobs.create(type="sheet", operation="race", dedupe_key="k",
                                                          debounce_seconds=5 if n % 2 else None, input={"n": n}))

        async with anyio.create_task_group() as tg:
            for n in range(30):
                tg.start_soon(create, (a, b)[n % 2], n)
        assert len({j.id for j in answers}) == 1
        assert [j.dedupe for j in answers].count("created") == 1
        assert (await a.api.jobs.list(type="sheet")).total == 1
        clock.advance(5)
        await a.scheduler.sweep()
        job = await b.api.jobs.get(answers[0].id)
        assert job.status is S.READY
        await b.api.jobs.ack(job.id)
        fresh = await a.api.jobs.create(type="sheet", operation="race", dedupe_key="k")
        assert fresh.id != job.id and fresh.dedupe == "created"


async def test_over_rest_a_new_job_is_202_and_a_hit_200_with_what_it_did(server: Server) -> None:
    token = server.admin_token
    body = {"type": "workbook", "operation": "export", "dedupeKey": "wb:9", "debounceSeconds": 10, "input": {"a": 1}}
    status, created = await call(server, "POST", f"{API}/jobs", token, json=body)
    assert (status, created["dedupe"], created["dedupeKey"], created["status"]) == (202, "created", "wb:9",
                                                                                    "scheduled")
    async with aiohttp.ClientSession() as session, session.post(
            server.url + f"{API}/jobs", json={**body, "input": {"a": 2}},
            headers={"Authorization": f"Bearer {token}"}) as response:
        assert (response.status, response.headers["Listener-Dedupe"]) == (200, "debounced")
        answer = await response.json()
    assert (answer["id"], answer["dedupe"], answer["input"]) == (created["id"], "debounced", {"a": 2})
    status, same = await call(server, "POST", f"{API}/jobs", token, json={"type": "workbook", "operation": "export",
                                                                          "dedupeKey": "wb:9"})
    assert (status, same["dedupe"], same["input"]) == (200, "deduplicated", {"a": 2})
    status, plain = await call(server, "POST", f"{API}/jobs", token, json={"type": "workbook", "operation": "export"})
    assert status == 202 and "dedupe" not in plain
    status, bad = await call(server, "POST", f"{API}/jobs", token, json={"type": "workbook", "operation": "export",
                                                                         "debounceSeconds": 3})
    assert "debounceSeconds" in assert_error(status, bad, 422, "invalid")
    status, bad = await call(server, "POST", f"{API}/jobs", token, json={**body, "debounceSeconds": -1})
    assert "debounceSeconds" in assert_error(status, bad, 422, "invalid")


async def test_a_members_key_never_finds_changes_or_reveals_another_members_job(server: Server) -> None:
    ann, bob = await server.token("ann"), await server.token("bob")
    body = {"type": "sheet", "operation": "sync", "dedupeKey": "shared", "debounceSeconds": 60}
    _, anns = await call(server, "POST", f"{API}/jobs", ann, json={**body, "input": {"who": "ann"}})
    status, bobs = await call(server, "POST", f"{API}/jobs", bob, json={**body, "input": {"who": "bob"}})
    assert (status, bobs["dedupe"]) == (202, "created") and bobs["id"] != anns["id"]
    _, mine = await call(server, "POST", f"{API}/jobs", ann, json={**body, "input": {"who": "ann again"}})
    assert (mine["id"], mine["dedupe"]) == (anns["id"], "debounced")
    assert (await server.platform.api.jobs.get(bobs["id"])).input == {"who": "bob"}, "bob's job is untouched"
    status, admins = await call(server, "POST", f"{API}/jobs", server.admin_token, json=body)
    assert status == 202 and admins["id"] not in (anns["id"], bobs["id"]), "the members' keys are their own"
    assert (anns["dedupeScope"], bobs["dedupeScope"], admins["dedupeScope"]) == ("ann", "bob", None)
