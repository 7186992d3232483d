"""Shared fixtures: a real platform on a real SQLite file, with a clock the test moves."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from listener import Platform
from listener.platform.auth import Users
from listener.platform.server import serve

REQUIRE_ALL = os.environ.get("LISTENER_REQUIRE_ALL") == "1"


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


@pytest.fixture
async def platform(db_path: Path, clock: ManualClock) -> AsyncIterator[Platform]:
    async with Platform.open(str(db_path), clock=clock) as p:
        yield p


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
