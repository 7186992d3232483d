"""PostgreSQL specifics: migrations, several replicas on one database, claims across them, lost connections."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import asyncpg
import pytest

from listener import Conflict, Event, JobStatus, Platform
from listener.platform.store.postgres import MIGRATIONS
from tests.conftest import PG_URL

pytestmark = pytest.mark.anyio


async def test_migrations_are_versioned_and_idempotent(pg_url: str) -> None:
    async with Platform.open(pg_url), Platform.open(pg_url):  # two replicas starting together
        pass
    async with Platform.open(pg_url) as platform:
        store = platform.store
        conn = await asyncpg.connect(PG_URL)
        try:
            versions = await conn.fetch(f'SELECT version FROM "{store.schema}".listener_migrations ORDER BY 1')  # type: ignore[attr-defined]
        finally:
            await conn.close()
    assert [v[0] for v in versions] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_client_of_replica_b_sees_in_order_what_replica_a_did(pg_url: str) -> None:
    async with Platform.open(pg_url) as a, Platform.open(pg_url) as b:
        seen: list[Event] = []
        six = anyio.Event()

        def on_batch(events: Sequence[Event]) -> None:
            seen.extend(events)
            if len(seen) >= 6:
                six.set()

        b.eventlog.on_batch(on_batch)
        job = await a.api.jobs.create(type="workbook", operation="export")
        await a.api.jobs.ack(job.id)
        await a.api.jobs.update(job.id, progress=50)
        await a.api.jobs.complete(job.id)
        await b.api.jobs.create(type="sheet", operation="dedupe", trigger="manual")
        with anyio.fail_after(5):
            await six.wait()
        assert [e.seq for e in seen] == [1, 2, 3, 4, 5, 6]
        assert [e.topic for e in seen[:5]] == ["job:created", "job:ready", "job:updated", "job:updated",
                                               "job:completed"]
        assert (await b.api.jobs.wait(job.id, timeout=5)).status is JobStatus.COMPLETE


async def test_one_of_100_acks_over_two_replicas_wins(pg_url: str) -> None:
    async with Platform.open(pg_url) as a, Platform.open(pg_url) as b:
        job = await a.api.jobs.create(type="workbook", operation="export")
        results: list[str] = []

        async def claim(platform: Platform, n: int) -> None:
            try:
                await platform.api.as_actor(f"worker-{n}").jobs.ack(job.id)
                results.append("won")
            except Conflict:
                results.append("conflict")

        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(claim, a if n % 2 else b, n)
        assert results.count("won") == 1 and results.count("conflict") == 99
        events = await a.store.read_events(0, 200)
        assert [e.topic for e in events] == ["job:created", "job:ready", "job:updated"]


async def test_cancel_against_complete_has_one_winner(pg_url: str) -> None:
    async with Platform.open(pg_url) as a, Platform.open(pg_url) as b:
        for _ in range(10):
            job = await a.api.jobs.create(type="workbook", operation="export")
            await a.api.jobs.ack(job.id)
            outcomes: dict[str, str] = {}

            async def move(name: str, call: object, outcomes: dict[str, str] = outcomes) -> None:
                try:
                    await call  # type: ignore[misc]
                    outcomes[name] = "ok"
                except Conflict:
                    outcomes[name] = "conflict"

            async with anyio.create_task_group() as tg:
                tg.start_soon(move, "cancel", a.api.jobs.cancel(job.id))
                tg.start_soon(move, "complete", b.api.jobs.complete(job.id))
            assert sorted(outcomes.values()) == ["conflict", "ok"]
            final = await a.api.jobs.get(job.id)
            winner = next(name for name, result in outcomes.items() if result == "ok")
            assert final.status is (JobStatus.CANCELLED if winner == "cancel" else JobStatus.COMPLETE)


async def test_the_cursor_of_one_agent_only_moves_forward_across_replicas(pg_url: str) -> None:
    async with Platform.open(pg_url) as a, Platform.open(pg_url) as b:
        async with anyio.create_task_group() as tg:
            for n in range(1, 101):
                tg.start_soon((a if n % 2 else b).store.set_cursor, "team/worker", n)
        assert await a.store.get_cursor("team/worker") == 100
        await b.store.set_cursor("team/worker", 7)
        assert await a.store.get_cursor("team/worker") == 100


async def test_lost_connections_are_replaced_and_nothing_is_lost(pg_url: str) -> None:
    async with Platform.open(pg_url, pool_size=4) as a, Platform.open(pg_url, pool_size=4) as b:
        seen: list[int] = []
        enough = anyio.Event()

        def on_batch(events: Sequence[Event]) -> None:
            seen.extend(e.seq for e in events)
            if len(seen) >= 80:
                enough.set()

        b.eventlog.on_batch(on_batch)
        created = [await a.api.jobs.create(type="workbook", operation="export") for _ in range(20)]
        # Every backend of both replicas: their pools and their LISTEN connections.
        admin = await asyncpg.connect(PG_URL)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                f"listener:{a.store.schema}")  # type: ignore[attr-defined]
        finally:
            await admin.close()
        assert killed >= 2
        created += [await a.api.jobs.create(type="workbook", operation="export") for _ in range(20)]
        with anyio.fail_after(10):
            await enough.wait()
        assert seen == list(range(1, 81)), "replica b saw every event, in order, after reconnecting"
        assert (await b.api.jobs.list(limit=100)).total == 40
