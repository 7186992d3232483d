"""Where file bytes live: a directory, or PostgreSQL large objects, under the file's id.

`Blobs` is the seam; `FileService` (files.py) writes the bytes before the metadata row and
deletes them after it, so a row never points at missing bytes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread

from listener.errors import NotFound
from listener.platform.store.base import Store

if TYPE_CHECKING:
    from listener.platform.store.postgres import PostgresStore

__all__ = ["CHUNK", "Blobs", "DiskBlobs", "PostgresBlobs", "default_blobs"]

CHUNK = 256 * 1024
_PG_CHUNK = 1024 * 1024  # one lo_put / lo_get round trip moves this much



class Blobs(Protocol):
    """Where file bytes live, under a key (always a file id, never a name)."""

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the chunks under `key`, durably, or nothing at all if they raise (or anything does)."""
        ...

    def read(self, key: str) -> AsyncGenerator[bytes, None]:
        """The bytes under `key`, a chunk at a time; NotFound (on the first chunk) if there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the bytes under `key`, if there are any."""
        ...

    async def keys(self, *, older_than: timedelta) -> list[str]:
        """The keys of bytes (whole, or partly written) last written longer than `older_than` ago."""
        ...


_KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a blob key (a file id).")
    return key


class DiskBlobs:
    """Bytes as files in one directory: `<id>.part` while written, fsynced, then renamed to `<id>`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"DiskBlobs({str(self.directory)!r})"

    def path(self, key: str) -> Path:
        """The file holding the bytes under `key`."""
        return self.directory / _check_key(key)

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        final = self.path(key)
        part = final.with_name(final.name + ".part")
        await anyio.to_thread.run_sync(lambda: self.directory.mkdir(parents=True, exist_ok=True))
        out = await anyio.open_file(part, "xb")
        try:
            async for chunk in chunks:
                await out.write(chunk)
            await out.flush()
            await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
            await out.aclose()
            await anyio.to_thread.run_sync(os.replace, part, final)
            await anyio.to_thread.run_sync(_fsync_directory, self.directory)  # the rename itself is durable
        except BaseException:
            with anyio.CancelScope(shield=True):
                await out.aclose()
                await anyio.to_thread.run_sync(lambda: part.unlink(missing_ok=True))
            raise

    async def read(self, key: str) -> AsyncGenerator[bytes, None]:
        try:
            source = await anyio.open_file(self.path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"The bytes of file {key} are missing.", details={"id": key}) from None
        async with source:
            while chunk := await source.read(CHUNK):
                yield chunk

    async def delete(self, key: str) -> None:
        final = self.path(key)

        def unlink() -> None:
            final.unlink(missing_ok=True)
            final.with_name(final.name + ".part").unlink(missing_ok=True)

        await anyio.to_thread.run_sync(unlink)

    async def keys(self, *, older_than: timedelta) -> list[str]:
        def scan() -> list[str]:
            if not self.directory.is_dir():
                return []
            before = time.time() - older_than.total_seconds()
            found = {entry.name.removesuffix(".part") for entry in os.scandir(self.directory)
                     if entry.is_file() and entry.stat().st_mtime < before}
            return sorted(k for k in found if _KEY.fullmatch(k))

        return await anyio.to_thread.run_sync(scan)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PostgresBlobs:
    """Bytes as PostgreSQL large objects, on connections of the store's pool.

    The table `file_blobs` (in the store's schema) maps a key to its large object; the object and
    its row are written in one transaction of their own, so a failed upload leaves neither. Large
    objects belong to the database, not to a schema: only those listed in `file_blobs` are ours.
    """

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._table = False

    def __repr__(self) -> str:
        return f"PostgresBlobs(schema={self.store.schema!r})"

    async def _ensure_table(self) -> None:
        if self._table:
            return
        async with self.store.connection() as conn, conn.transaction():
            # Replicas starting together take turns; the second finds the table there.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"listener-blobs:{self.store.schema}")
            await conn.execute("CREATE TABLE IF NOT EXISTS file_blobs (key text PRIMARY KEY, oid oid NOT NULL,"
                               " created_at timestamptz NOT NULL DEFAULT now())")
        self._table = True

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        await self._ensure_table()
        async with self.store.connection() as conn, conn.transaction():
            oid = await conn.fetchval("SELECT lo_create(0)")
            offset = 0
            pending = bytearray()
            async for chunk in chunks:
                pending += chunk
                if len(pending) >= _PG_CHUNK:
                    await conn.execute("SELECT lo_put($1, $2, $3)", oid, offset, bytes(pending))
                    offset += len(pending)
                    pending.clear()
            if pending:
                await conn.execute("SELECT lo_put($1, $2, $3)", oid, offset, bytes(pending))
            await conn.execute("INSERT INTO file_blobs (key, oid) VALUES ($1, $2)", _check_key(key), oid)

    async def read(self, key: str) -> AsyncGenerator[bytes, None]:
        await self._ensure_table()
        # One snapshot for the whole read: a delete committed meanwhile does not cut it short.
        async with self.store.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            oid = await conn.fetchval("SELECT oid FROM file_blobs WHERE key = $1", key)
            if oid is None:
                raise NotFound(f"The bytes of file {key} are missing.", details={"id": key})
            offset = 0
            while True:
                chunk: bytes = await conn.fetchval("SELECT lo_get($1, $2, $3)", oid, offset, _PG_CHUNK)
                if chunk:
                    yield chunk
                if len(chunk) < _PG_CHUNK:
                    return
                offset += len(chunk)

    async def delete(self, key: str) -> None:
        await self._ensure_table()
        async with self.store.connection() as conn, conn.transaction():
            oid = await conn.fetchval("DELETE FROM file_blobs WHERE key = $1 RETURNING oid", key)
            if oid is not None:
                await conn.execute("SELECT lo_unlink($1)", oid)

    async def keys(self, *, older_than: timedelta) -> list[str]:
        await self._ensure_table()
        async with self.store.connection() as conn:
            rows = await conn.fetch("SELECT key FROM file_blobs WHERE created_at < now() - $1::interval"
                                    " ORDER BY key", older_than)
        return [r["key"] for r in rows]


def default_blobs(store: Store) -> Blobs | None:
    """Where a store's file bytes go by default: `<db file>.files/` for SQLite, large objects for PostgreSQL."""
    from listener.platform.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return DiskBlobs(store.path.with_name(store.path.name + ".files"))
    from listener.platform.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresBlobs(store)
    return None
