"""The one schema: both stores' steps build the same tables with the same columns."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest

from listener.platform.store.postgres import PostgresStore
from listener.platform.store.schema import STEPS
from listener.platform.store.sqlite import SqliteStore
from tests.conftest import PG_URL

pytestmark = pytest.mark.anyio

# What only PostgreSQL keeps: the insertion order SQLite has in the rowid, the log's head SQLite reads as
# max(seq), and the migrations SQLite counts in PRAGMA user_version.
POSTGRES_ONLY = {"event_head.id", "event_head.seq", "jobs.pos", "listener_migrations.applied_at",
                 "listener_migrations.version", "objects.pos"}


async def test_both_stores_build_the_same_tables_and_columns(db_path: Path, pg_url: str) -> None:
    async with SqliteStore.open(db_path):
        pass
    with closing(sqlite3.connect(db_path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sqlite_columns = {f"{t}.{c[1]}" for t in tables for c in db.execute(f"PRAGMA table_info({t})")}
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)
    async with PostgresStore.open(pg_url) as store:
        conn = await asyncpg.connect(PG_URL)
        try:
            rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns"
                                    " WHERE table_schema = $1", store.schema)
        finally:
            await conn.close()
    postgres_columns = {f"{r[0]}.{r[1]}" for r in rows}
    assert sqlite_columns == postgres_columns - POSTGRES_ONLY
    assert POSTGRES_ONLY <= postgres_columns
