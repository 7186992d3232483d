"""Subscriptions: backlog first, then live events, in order, even when the reader falls behind."""

from __future__ import annotations

import anyio
import pytest

from listener import Platform
from listener.models import Event
from listener.platform.eventlog import Subscription

pytestmark = pytest.mark.anyio


async def collect(subscription: Subscription, count: int) -> list[Event]:
    out: list[Event] = []
    with anyio.fail_after(5):
        async for event in subscription:
            out.append(event)
            if len(out) == count:
                break
    return out


async def create(platform: Platform, n: int) -> None:
    for _ in range(n):
        await platform.api.jobs.create(type="workbook", operation="export", trigger="manual")


async def test_backlog_then_live(platform: Platform) -> None:
    await create(platform, 3)
    async with platform.eventlog.subscribe(after=1) as subscription:
        first = await collect(subscription, 2)
        assert [e.seq for e in first] == [2, 3]
        await create(platform, 2)
        assert [e.seq for e in await collect(subscription, 2)] == [4, 5]


async def test_a_reader_that_falls_behind_gets_the_backlog(platform: Platform) -> None:
    platform.eventlog.buffer = 5
    async with platform.eventlog.subscribe(after=0) as subscription:
        await create(platform, 40)  # overflows the 5-event buffer many times over
        events = await collect(subscription, 40)
    assert [e.seq for e in events] == list(range(1, 41))


async def test_live_events_with_a_gap_are_filled_from_the_store(platform: Platform) -> None:
    subscription = platform.eventlog.subscribe(after=0)
    await create(platform, 2)  # published before the subscription listens: only in the store
    async with subscription:
        await create(platform, 2)
        events = await collect(subscription, 4)
    assert [e.seq for e in events] == [1, 2, 3, 4]


async def test_closed_subscription_stops_receiving(platform: Platform) -> None:
    async with platform.eventlog.subscribe(after=0) as subscription:
        pass
    await create(platform, 1)
    assert not subscription._live
