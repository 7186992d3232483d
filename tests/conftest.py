"""Shared fixtures: a real platform on a real SQLite file, with a clock the test moves."""

from __future__ import annotations

import functools
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from listener import Platform
from listener.platform.auth import Users
from listener.platform.server import serve
from listener.platform.store.sqlite import SqliteStore

REQUIRE_ALL = os.environ.get("LISTENER_REQUIRE_ALL") == "1"
PG_URL = os.environ.get("LISTENER_TEST_POSTGRES", "postgresql://127.0.0.1/test")
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]


def needs(service: str, reason: str) -> None:
    """Skip on a laptop without `service`; fail in CI (LISTENER_REQUIRE_ALL=1), where it must be there."""
    if REQUIRE_ALL:
        pytest.fail(f"{service} is required (LISTENER_REQUIRE_ALL=1) but {reason}")
    pytest.skip(f"{service} is not available: {reason}")


_pg_problem: list[str] = []


async def postgres_available() -> str | None:
    """None if the test PostgreSQL server answers, else why not (asked once per run)."""
    if not _pg_problem:
        try:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.close()
            _pg_problem.append("")
        except (OSError, asyncpg.PostgresError) as exc:
            _pg_problem.append(f"{PG_URL} does not answer: {exc}")
    return _pg_problem[0] or None


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A URL for a fresh schema of the test database, dropped afterwards."""
    problem = await postgres_available()
    if problem:
        needs("PostgreSQL", problem)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        conn = await asyncpg.connect(PG_URL)
        try:
            # Large objects (file bytes) belong to the database, not to the schema: unlink the schema's own.
            if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".file_blobs') is not None:
                await conn.execute(f'SELECT lo_unlink(oid) FROM "{schema}".file_blobs')
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "listener.db"


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[str]:
    """The database of one test: a fresh SQLite file, or a fresh schema on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{db_path}"
    else:
        async with postgres_schema() as url:
            yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh schema on the test PostgreSQL server (for what only PostgreSQL does: replicas)."""
    async with postgres_schema() as url:
        yield url


@pytest.fixture
async def platform(db_url: str, clock: ManualClock) -> AsyncIterator[Platform]:
    # Time moves only when the test says so, and so do the scheduler's sweeps.
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as p:
        yield p


async def snapshot(platform: Platform) -> dict[str, list[Any]]:
    """Every row of every table of the platform's database, read through a connection of our own."""
    store: Any = platform.store
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in names}
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        names = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1"
                                                 " ORDER BY tablename", store.schema)]
        return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in names}
    finally:
        await conn.close()


@dataclass
class Server:
    """A real `listener serve` on 127.0.0.1 and a free port, over the test's platform."""

    url: str
    platform: Platform
    users: Users
    admin_token: str

    async def token(self, name: str, role: str = "member") -> str:
        """A bearer token for a new user with this role."""
        _, token = await self.users.create(name, role)
        return token


@pytest.fixture
async def server(platform: Platform) -> AsyncIterator[Server]:
    users = Users(platform.store, platform.clock)
    admin_token = await users.ensure_admin()
    assert admin_token is not None
    async with anyio.create_task_group() as tg:
        port = await tg.start(functools.partial(serve, platform, port=0, users=users, shutdown_timeout=5))
        yield Server(f"http://127.0.0.1:{port}", platform, users, admin_token)
        tg.cancel_scope.cancel()
