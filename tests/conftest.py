"""Shared fixtures: a real platform on a real SQLite file, with a clock the test moves."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener import Platform

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
