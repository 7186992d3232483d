"""Webhooks against a real local receiver (aiohttp on 127.0.0.1, port 0) that fails on purpose, on both stores.

The backoff's sleep is injected: it records each delay and waits for the test to let it pass, so a
retry never waits for real and the order of what happens is the test's, not the clock's.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiohttp import web

from listener import Invalid, NotFound, Platform
from listener.platform.webhook_delivery import Deliverer, DeliverySettings
from listener.webhooks import SIGNATURE_HEADER, WebhookStatus, verify_signature
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: int | str

    @property
    def event_id(self) -> str:
        return self.headers["Listener-Event-Id"]

    @property
    def attempt(self) -> int:
        return int(self.headers["Listener-Delivery-Attempt"])


@dataclass
class Receiver:
    """Records every POST; answers each path's planned statuses in turn ("hang": never answers), then 200."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    plans: dict[str, list[int | str]] = field(default_factory=dict)
    _arrived: anyio.Event = field(default_factory=anyio.Event)
    _hung: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        plan = self.plans.get(request.path) or []
        answer = plan.pop(0) if plan else 200
        self.hits.append(Hit(request.path, dict(request.headers), body, answer))
        self._arrived.set()
        self._arrived = anyio.Event()
        if answer == "hang":
            await self._hung.wait()
            answer = 200
        return web.Response(status=int(answer))

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 10) -> list[Hit]:
        """Until `path` has had `count` requests."""
        with anyio.fail_after(timeout):
            while len(self.at(path)) < count:
                await self._arrived.wait()
        return self.at(path)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        receiver._hung.set()
        await runner.cleanup()


class Backoff:
    """The deliverer's sleep: records each delay, and passes only while `gate` is set."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gate = anyio.Event()
        self.gate.set()

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self.gate.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


@pytest.fixture
def backoff() -> Backoff:
    return Backoff()


def settings(backoff: Backoff, **more: Any) -> DeliverySettings:
    return DeliverySettings(**{"sleep": backoff.sleep, "poll": 0.05, "lease": 5, "timeout": 2, **more})


@asynccontextmanager
async def opened(db_url: str, clock: ManualClock, backoff: Backoff, **more: Any) -> AsyncIterator[Platform]:
    async with Platform.open(db_url, clock=clock, sweep_interval=None, system_jobs=False,
                             webhooks=settings(backoff, **more)) as platform:
        yield platform


def deliverer(platform: Platform) -> Deliverer:
    assert platform.deliverer is not None
    return platform.deliverer


async def test_retries_with_backoff_hold_back_only_their_own_webhook_in_order_and_signed(
        db_url: str, clock: ManualClock, receiver: Receiver, backoff: Backoff) -> None:
    receiver.plans["/a"] = [500, 500]
    async with opened(db_url, clock, backoff) as platform:
        api = platform.api
        a = await api.webhooks.create(url=f"{receiver.url}/a", topics=["job:created"], filter={"job": "workbook:*"})
        b = await api.webhooks.create(url=f"{receiver.url}/b", topics="job:created", filter={"job": "workbook:*"})
        for w in (a, b):
            await deliverer(platform).wait_delivering(w.webhook.id)
        backoff.gate = anyio.Event()  # the first failure of /a waits here until the test lets it go on
        jobs = [await api.jobs.create(type="workbook", operation="export") for _ in range(3)]
        await api.jobs.create(type="sheet", operation="export")  # not for either: the filter leaves it out
        # /b gets all three while /a's first event waits for its retry: a failing webhook holds back only itself.
        b_hits = await receiver.wait_for("/b", 3)
        assert [h.attempt for h in receiver.at("/a")] == [1]
        backoff.gate.set()
        a_hits = await receiver.wait_for("/a", 5)
        created = [[e.id for e in await api.events.list(job_id=job.id) if e.topic == "job:created"] for job in jobs]
    assert backoff.delays == [1.0, 2.0]  # exponential: backoff * factor ** (attempt - 1)
    assert [h.answer for h in a_hits] == [500, 500, 200, 200, 200]
    assert [h.attempt for h in a_hits] == [1, 2, 3, 1, 1]
    assert [h.event_id for h in a_hits[2:]] == [h.event_id for h in b_hits] == [ids[0] for ids in created]
    for hit, secret in [*((h, a.secret) for h in a_hits), *((h, b.secret) for h in b_hits)]:
        assert verify_signature(secret, hit.headers[SIGNATURE_HEADER], hit.body, now=clock.now().timestamp())
        assert not verify_signature("whsec_other", hit.headers[SIGNATURE_HEADER], hit.body,
                                    now=clock.now().timestamp())
        assert not verify_signature(secret, hit.headers[SIGNATURE_HEADER], hit.body,
                                    now=clock.now().timestamp() + 301), "older than the tolerance: a replay"
        assert hit.headers["Content-Type"] == "application/json"
    assert {h.body.decode().count('"topic":"job:created"') for h in a_hits} == {1}


async def test_deliveries_show_status_codes_timeouts_and_connection_errors(
        db_url: str, clock: ManualClock, receiver: Receiver, backoff: Backoff) -> None:
    receiver.plans["/slow"] = ["hang"]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    async with opened(db_url, clock, backoff, timeout=0.2) as platform:
        api = platform.api
        slow = await api.webhooks.create(url=f"{receiver.url}/slow", topics=["job:ready"])
        gone = await api.webhooks.create(url=closed, topics=["job:ready"])
        for w in (slow, gone):
            await deliverer(platform).wait_delivering(w.webhook.id)
        backoff.gate = anyio.Event()
        await api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/slow", 1)
        with anyio.fail_after(10):  # each first attempt is recorded, then waits for the gate
            while not await api.webhooks.deliveries(slow.webhook.id) or not await api.webhooks.deliveries(
                    gone.webhook.id):
                await anyio.sleep(0.01)
        backoff.gate.set()
        await receiver.wait_for("/slow", 2)
        with anyio.fail_after(10):
            while not (d := await api.webhooks.deliveries(slow.webhook.id)) or not d[0].ok:
                await anyio.sleep(0.01)
        [ok, timed_out] = (await api.webhooks.deliveries(slow.webhook.id))[:2]
        assert (timed_out.attempt, timed_out.ok, timed_out.status_code, timed_out.error) == (
            1, False, None, "No answer within 0.2s.")
        assert (ok.attempt, ok.ok, ok.status_code, ok.error) == (2, True, 200, None)
        failed = (await api.webhooks.deliveries(gone.webhook.id))[-1]
        assert (failed.attempt, failed.ok, failed.status_code) == (1, False, None)
        assert failed.error and "Connect" in failed.error
        assert failed.topic == "job:ready" and failed.duration_ms >= 0
        paused = await api.webhooks.pause(gone.webhook.id)
        assert paused.status is WebhookStatus.PAUSED
        await deliverer(platform).wait_delivering(gone.webhook.id, False)


async def test_a_restart_resumes_after_the_last_delivered_event(
        db_url: str, clock: ManualClock, receiver: Receiver, backoff: Backoff) -> None:
    async with opened(db_url, clock, backoff) as platform:
        new = await platform.api.webhooks.create(url=f"{receiver.url}/r", topics=["job:created"])
        await deliverer(platform).wait_delivering(new.webhook.id)
        for _ in range(2):
            await platform.api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/r", 2)
    async with Platform.open(db_url, clock=clock, sweep_interval=None, system_jobs=False, webhooks=None) as down:
        for _ in range(2):  # while no process delivers
            await down.api.jobs.create(type="workbook", operation="export")
        cursor = (await down.api.webhooks.get(new.webhook.id)).cursor
        assert cursor is not None and cursor >= 3, "past the second job:created, at least"
    async with opened(db_url, clock, backoff) as platform:
        hits = await receiver.wait_for("/r", 4)
        head = await platform.store.head()
        with anyio.fail_after(10):
            while (await platform.api.webhooks.get(new.webhook.id)).cursor != head:
                await anyio.sleep(0.01)
    ids = [h.event_id for h in hits]
    # An orderly stop saves the cursor: nothing is sent twice, nothing is left out, in the log's order.
    assert len(receiver.at("/r")) == 4 and ids == sorted(set(ids))


async def test_pause_keeps_the_cursor_and_resume_delivers_what_came_meanwhile(
        db_url: str, clock: ManualClock, receiver: Receiver, backoff: Backoff) -> None:
    async with opened(db_url, clock, backoff) as platform:
        api = platform.api
        new = await api.webhooks.create(url=f"{receiver.url}/p", topics=["job:created"])
        witness = await api.webhooks.create(url=f"{receiver.url}/w", topics=["job:created"])
        for w in (new, witness):
            await deliverer(platform).wait_delivering(w.webhook.id)
        await api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/p", 1)
        await api.webhooks.pause(new.webhook.id)
        await deliverer(platform).wait_delivering(new.webhook.id, False)
        cursor = (await api.webhooks.get(new.webhook.id)).cursor
        await api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/w", 2)  # the other webhook got it: this one, paused, did not
        paused = await api.webhooks.get(new.webhook.id)
        assert (paused.status, paused.cursor, len(receiver.at("/p"))) == (WebhookStatus.PAUSED, cursor, 1)
        assert (await api.webhooks.resume(new.webhook.id)).status is WebhookStatus.ACTIVE
        hits = await receiver.wait_for("/p", 2)
        assert hits[1].event_id == receiver.at("/w")[1].event_id
        assert [w.id for w in await api.webhooks.list()] == [new.webhook.id, witness.webhook.id]
        await api.webhooks.delete(new.webhook.id)
        await deliverer(platform).wait_delivering(new.webhook.id, False)
        with pytest.raises(NotFound):
            await api.webhooks.get(new.webhook.id)
        with pytest.raises(NotFound):
            await api.webhooks.deliveries(new.webhook.id)
        assert f"webhook:{new.webhook.id}" not in await platform.store.cursors()


async def test_deliveries_are_kept_to_the_latest_few(db_url: str, clock: ManualClock, receiver: Receiver,
                                                      backoff: Backoff) -> None:
    receiver.plans["/k"] = [503] * 4
    async with opened(db_url, clock, backoff, keep=3) as platform:
        new = await platform.api.webhooks.create(url=f"{receiver.url}/k", topics=["job:created"])
        await deliverer(platform).wait_delivering(new.webhook.id)
        await platform.api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/k", 5)
        with anyio.fail_after(10):
            while not (d := await platform.api.webhooks.deliveries(new.webhook.id)) or not d[0].ok:
                await anyio.sleep(0.01)
        assert [(x.attempt, x.status_code) for x in d] == [(5, 200), (4, 503), (3, 503)]


@pytest.mark.parametrize(("given", "field"), [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "http:///nohost"}, "url"),
    ({"topics": []}, "topics"),
    ({"topics": ["job::x"]}, "topics"),
    ({"filter": {"jbo": "workbook:*"}}, "filter"),
])
async def test_bad_input_is_invalid_naming_the_field(platform: Platform, given: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"url": "https://example.com/hook", "topics": ["job:*"], **given}
    with pytest.raises(Invalid) as raised:
        await platform.api.webhooks.create(**args)
    assert [d["field"] for d in raised.value.details] == [field]
    assert await platform.api.webhooks.list() == []


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(Invalid, match="lease: must be longer"):
        DeliverySettings(lease=5, timeout=10)
    with pytest.raises(Invalid, match="timeout"):
        DeliverySettings(timeout=0)
    assert [DeliverySettings(max_backoff=5).delay(n) for n in (1, 2, 3, 4, 100)] == [1, 2, 4, 5, 5]


async def test_two_replicas_on_one_postgresql_schema_deliver_each_event_once(
        pg_url: str, clock: ManualClock, receiver: Receiver, backoff: Backoff) -> None:
    async with opened(pg_url, clock, backoff) as a, opened(pg_url, clock, backoff) as b:
        new = await a.api.webhooks.create(url=f"{receiver.url}/once", topics=["job:created"])
        with anyio.fail_after(10):  # b sees the webhook at its next poll and finds it leased
            while new.webhook.id not in deliverer(a).delivering and new.webhook.id not in deliverer(b).delivering:
                await anyio.sleep(0.01)
        for _ in range(5):
            await a.api.jobs.create(type="workbook", operation="export")
            await b.api.jobs.create(type="workbook", operation="export")
        hits = await receiver.wait_for("/once", 10)
        other = b if new.webhook.id in deliverer(a).delivering else a
        assert new.webhook.id not in deliverer(other).delivering, "one replica delivers a webhook at a time"
    ids = [h.event_id for h in hits]
    assert len(ids) == len(set(ids)) == 10 and ids == sorted(ids), "each event once, in the log's order"


async def test_a_replica_that_stops_hands_its_webhooks_over(
        pg_url: str, clock: ManualClock, receiver: Receiver, backoff: Backoff) -> None:
    async with opened(pg_url, clock, backoff) as b:
        async with opened(pg_url, clock, backoff) as a:
            new = await a.api.webhooks.create(url=f"{receiver.url}/h", topics=["job:created"])
            await deliverer(a).wait_delivering(new.webhook.id)  # a made it, and wakes at once: a holds it
            await a.api.jobs.create(type="workbook", operation="export")
            await receiver.wait_for("/h", 1)
        # a stopped: it saved the cursor and released the lease, so b takes the webhook at its next poll.
        await deliverer(b).wait_delivering(new.webhook.id)
        await b.api.jobs.create(type="workbook", operation="export")
        hits = await receiver.wait_for("/h", 2)
    assert len({h.event_id for h in hits}) == 2


async def test_a_lease_that_ran_out_is_taken_over(pg_url: str, clock: ManualClock, receiver: Receiver,
                                                  backoff: Backoff) -> None:
    async with opened(pg_url, clock, backoff) as platform:
        new = await platform.api.webhooks.create(url=f"{receiver.url}/l", topics=["job:created"])
        await deliverer(platform).wait_delivering(new.webhook.id)
        now = clock.now().timestamp()
        store = platform.store
        assert not await store.lease_webhook(new.webhook.id, "dl_dead", now, now + 5), "held by the live one"
        assert await store.lease_webhook(new.webhook.id, "dl_dead", now + 5, now + 10), "run out: taken"
        await deliverer(platform).wait_delivering(new.webhook.id, False)  # it lost it at its next renewal
        clock.advance(11)  # the dead holder's lease runs out: the live replica takes it back
        await deliverer(platform).wait_delivering(new.webhook.id)
        await platform.api.jobs.create(type="workbook", operation="export")
        await receiver.wait_for("/l", 1)
