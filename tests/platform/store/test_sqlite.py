"""The SQLite store: WAL, one transaction per change, a gap-free log, and state that survives a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from listener.platform.store.sqlite import MIGRATIONS, SqliteStore

pytestmark = pytest.mark.anyio


async def test_wal_mode_and_schema_version(db_path: Path) -> None:
    async with SqliteStore.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    async with SqliteStore.open(db_path):  # migrating again is a no-op
        pass


async def test_store_refuses_use_after_close(db_path: Path) -> None:
    async with SqliteStore.open(db_path) as store:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await store.append_events([])

