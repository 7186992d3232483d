"""The Store's reads, written once for both backends: each statement, and how its rows read back.

A backend runs a read with its own `_query(decode, *statements)`: the statements in order on one of
its read connections, then `decode` with their rows, one list per statement. SQLite runs all of it,
decode too, in one trip to a worker thread; PostgreSQL on one connection of its pool. Rows are read
by position, which both drivers' rows allow.

The statements mark their parameters `?`; PostgreSQL numbers them (`numbered`). Where the dialects
differ it is in a word: the column that keeps jobs and objects in the order they were inserted
(`_position`: SQLite's rowid, PostgreSQL's pos), how a waiting job is named (`_waiting`), how an
instant is kept (`_instant`: epoch seconds, timestamptz) and how a condition takes a list of values
(`_any_of`). What a backend reads its own way (the log's head, part counts) stays in the backend.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from listener import status_words
from listener.models import Event, EventContext, Job, JobItemError, JobSettings, JobStatus, Record
from listener.platform.store.base import (
    JobQuery,
    PartStats,
    StoredObject,
    StoredUser,
    StoredWebhook,
    job_not_found,
    object_not_found,
    schedule_not_found,
    webhook_not_found,
)
from listener.platform.store.queues import QueueReads
from listener.schedules import Schedule

__all__ = ["SORT_COLUMNS", "USER_COLUMNS", "AnyOf", "Statement", "StoreReads", "first_column", "job_filter",
           "like_pattern", "number", "numbered", "part_stats_of", "sort_column", "status_terms", "stored_user"]

T = TypeVar("T")

Statement = tuple[str, Sequence[Any]]
"""A statement with `?` marks, and its parameters."""

AnyOf = Callable[[str, Sequence[str], list[Any]], str]
"""A store's `column IN values` condition: it adds what it needs to the parameters and returns its SQL."""


@functools.lru_cache(maxsize=512)  # the statements are few: each is numbered once, not on every read
def numbered(sql: str) -> str:
    """`sql` with its `?` marks numbered as PostgreSQL's `$1`, `$2`, ... (no statement here has another `?`)."""
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{text}" for n, text in enumerate(rest, start=1))


StatusTerm = tuple[str, list[str]]
"""("status", s): status IN s; ("status_detail", d): status_detail IN d; ("undetailed", s): status IN s, no detail."""


def status_terms(query: JobQuery) -> tuple[list[str], list[StatusTerm]]:
    """How a store reads a query's status filter: `status IN (the first)` (if any), and the OR of the second's terms.

    Details alone (RETRY, TIMEOUT) are `status_detail IN (...)`, a range of the partial index. Any other filter is
    a range of jobs_status_type per status, and a row's detail is read only for a status that needs it.
    """
    plain, undetailed = [s.value for s in query.status], [s.value for s in query.undetailed]
    details = list(query.status_details)
    if not plain and not undetailed:
        return [], [("status_detail", details)] if details else []
    if not details and not undetailed:
        return plain, []
    statuses = list(dict.fromkeys([*plain, *undetailed, *(status_words.DETAILS[d] for d in details)]))
    terms = [(c, v) for c, v in (("status", plain), ("undetailed", undetailed), ("status_detail", details)) if v]
    return statuses, terms


def job_filter(query: JobQuery, any_of: AnyOf, params: list[Any], id_column: str = "id") -> str:
    """The WHERE clause of a job listing's indexed filters (empty for none); its parameters go to `params` in the
    clause's order. `id_column` is how the store compares ids byte by byte (a prefix is a range of its index).

    A text or metadata condition is not here: it reads each job's document (StoreReads._listing bounds it)."""
    where: list[str] = []
    statuses, terms = status_terms(query)
    if statuses:
        where.append(any_of("status", statuses, params))
    if terms:
        ors = [f"{any_of('status', v, params)} AND status_detail IS NULL" if column == "undetailed"
               else any_of(column, v, params) for column, v in terms]
        where.append(ors[0] if len(ors) == 1 else f"({' OR '.join(f'({o})' for o in ors)})")
    where += [any_of(column, [str(v) for v in values], params)
              for column, values in (("type", query.type), ("operation", query.operation)) if values]
    for column, value in (("created_by", query.created_by), ("parent_id", query.parent_id)):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ?")
    if query.is_part is not None:
        where.append("parent_id IS NOT NULL" if query.is_part else "parent_id IS NULL")
    if query.id_prefix is not None:
        params += [query.id_prefix, query.id_prefix + _ABOVE]
        where.append(f"{id_column} >= ? AND {id_column} < ?")
    if (sorted_by := sort_column(query.sort)) is not None:
        where.append(f"{sorted_by} IS NOT NULL")
    return f" WHERE {' AND '.join(where)}" if where else ""


_ABOVE = "\U0010ffff"
"""Above every character: the ids starting with p are those from p up to p + this (compared as bytes)."""

SORT_COLUMNS = {"created": None, "started": "started_at", "ended": "finished_at", "duration": "duration"}
"""What each JobSort orders by (None: the insertion order); jobs without a value are not listed."""


def sort_column(sort: str | None) -> str | None:
    """The column a listing's sort reads, if it is one that a job may not have (then only those with it are listed)."""
    return SORT_COLUMNS[sort.removeprefix("-")] if sort is not None else None


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` escaped with `\\`."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def part_stats_of(counts: list[Any], failed: list[Any]) -> PartStats:
    """A split job's PartStats from its parts' (status, count, sum of progress) rows and the failed parts' numbers."""
    by_status = {JobStatus(r[0]): int(r[1]) for r in counts}
    progress = sum(int(r[2] or 0) for r in counts if not JobStatus(r[0]).is_terminal)
    return PartStats(by_status, progress, [r[0] for r in failed])


def _record(row: Any, sheet_id: str) -> Record:
    return Record(id=row[0], sheet_id=sheet_id, values=json.loads(row[1]), created_at=row[2], updated_at=row[3])


def _object(row: Any) -> StoredObject:
    return StoredObject(row[0], row[1], row[2], json.loads(row[3]))


USER_COLUMNS = "id, name, role, token_hash, doc"
"""A user's row as stored_user reads it, in every statement that reads one (both stores' writes too)."""


def stored_user(row: Any) -> StoredUser:
    return StoredUser(row[0], row[1], row[2], row[3], json.loads(row[4]))


def first_column(rows: list[Any]) -> list[Any]:
    """What a statement that reads one column read (ids, say)."""
    return [r[0] for r in rows]


def number(rows: list[Any]) -> int:
    """What a statement that reads one number read (a count, the log's head)."""
    return int(rows[0][0])


def _starts_limited(settings: JobSettings) -> bool:
    return settings.max_running is not None or settings.starts_per_second is not None


class StoreReads(QueueReads):
    """The reads of the Store protocol, and the per-type settings a store remembers from them.

    A backend provides `_query`, `_any_of`, `_instant`, `_position`, `_waiting` and `_minute`.
    """

    _position: ClassVar[str]
    """The column that keeps jobs and objects in the order they were inserted."""
    _waiting: ClassVar[str]
    """A waiting job's condition, as the partial index jobs_waiting says it (a query must, for the index to serve)."""
    _id_column: ClassVar[str]
    """The job id as the store compares it byte by byte, as an index of it is declared (an id prefix is its range)."""
    _limits: dict[str, JobSettings]
    _limited: dict[str, JobSettings]
    """The settings that limit how many jobs of their type may start: what a store admits a job against."""

    if TYPE_CHECKING:
        async def _query(self, decode: Callable[..., T], *statements: Statement) -> T: ...

        @staticmethod
        def _any_of(column: str, values: Sequence[str], params: list[Any]) -> str: ...

        @staticmethod
        def _instant(instant: datetime) -> Any:
            """An instant as the store keeps it in due_at and finished_at."""

        @staticmethod
        def _text_match(text: str, params: list[Any]) -> str:
            """The condition that the job's info or error message holds `text`, in any case."""

        @staticmethod
        def _metadata_match(key: str, value: str, params: list[Any]) -> str:
            """The condition that the job's metadata has `key` with `value` (a string, or JSON's text of another)."""

    # -- jobs -----------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job:
        def job(rows: list[Any]) -> Job:
            if not rows:
                raise job_not_found(job_id)
            return Job.model_validate_json(rows[0][0])

        return await self._query(job, ("SELECT doc FROM jobs WHERE id = ?", (job_id,)))

    def _listing(self, query: JobQuery, params: list[Any]) -> str:
        """The WHERE clause of a listing: its indexed filters, and, bounded to the newest `query.window` jobs they
        match, its conditions on each job's document (text, metadata)."""
        clause = job_filter(query, self._any_of, params, self._id_column)
        if not query.reads_documents:
            return clause
        p = self._position
        where = [f"{p} IN (SELECT {p} FROM jobs{clause} ORDER BY {p} DESC LIMIT {int(query.window)})"]
        if query.text is not None:
            where.append(self._text_match(query.text, params))
        where += [self._metadata_match(key, value, params) for key, value in query.metadata]
        return f" WHERE {' AND '.join(where)}"

    def _order(self, query: JobQuery) -> str:
        p = self._position
        if query.sort is None:
            return "part" if query.parent_id is not None else f"{p} DESC"
        direction = " DESC" if query.sort.startswith("-") else ""
        column = sort_column(query.sort)
        return f"{p}{direction}" if column is None else f"{column}{direction}, {p}{direction}"

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        params: list[Any] = []
        clause = self._listing(query, params)

        def page(total: list[Any], rows: list[Any]) -> tuple[list[Job], int]:
            return [Job.model_validate_json(r[0]) for r in rows], number(total)

        return await self._query(page, (f"SELECT count(*) FROM jobs{clause}", params),
                                 (f"SELECT doc FROM jobs{clause} ORDER BY {self._order(query)} LIMIT ? OFFSET ?",
                                  [*params, query.limit, query.offset]))

    async def job_ids(self, query: JobQuery) -> tuple[list[str], int]:
        params: list[Any] = []
        clause = self._listing(query, params)

        def ids(total: list[Any], rows: list[Any]) -> tuple[list[str], int]:
            return first_column(rows), number(total)

        return await self._query(ids, (f"SELECT count(*) FROM jobs{clause}", params),
                                 (f"SELECT id FROM jobs{clause} ORDER BY {self._order(query)} LIMIT ? OFFSET ?",
                                  [*params, query.limit, query.offset]))

    async def count_statuses(self, query: JobQuery) -> dict[JobStatus, int]:
        # Only what the status indexes hold: type, operation and creator. Parts are counted apart (from the partial
        # index of parts) and taken away when they are left out, since "not a part" is in no index.
        base = JobQuery(type=query.type, operation=query.operation, created_by=query.created_by)
        statements: list[Statement] = []
        for one in ([base] if query.is_part is None else []) + \
                   ([base, dataclasses.replace(base, is_part=True)] if query.is_part is False else []) + \
                   ([dataclasses.replace(base, is_part=True)] if query.is_part else []):
            params: list[Any] = []
            statements.append((f"SELECT status, count(*) FROM jobs{job_filter(one, self._any_of, params)}"
                               " GROUP BY status", params))

        def counts(*results: list[Any]) -> dict[JobStatus, int]:
            found = {JobStatus(r[0]): int(r[1]) for r in results[0]}
            for r in results[1] if len(results) > 1 else ():  # the parts, left out
                found[JobStatus(r[0])] -= int(r[1])
            return {status: n for status, n in found.items() if n}

        return await self._query(counts, *statements)

    async def ready_jobs(self, after: int, limit: int, *, priority: int = 0,
                         band: int = 0) -> list[tuple[int, Job, EventContext]]:
        def ready(rows: list[Any]) -> list[tuple[int, Job, EventContext]]:
            return [(r[0], Job.model_validate_json(r[1]), EventContext.model_validate_json(r[2])) for r in rows]

        p = self._position
        if not band:
            return await self._query(ready, (f"SELECT {p}, doc, ctx FROM jobs WHERE status = 'ready' AND priority = 0"
                                             f" AND {p} > ? ORDER BY {p} LIMIT ?", (after, limit)))
        # `priority != 0` as jobs_ready_priority says it, for the partial index to serve.
        side = "priority > 0" if band > 0 else "priority < 0"
        return await self._query(ready, (f"SELECT {p}, doc, ctx FROM jobs WHERE status = 'ready' AND priority != 0"
                                         f" AND {side} AND (priority < ? OR (priority = ? AND {p} > ?))"
                                         f" ORDER BY priority DESC, {p} LIMIT ?", (priority, priority, after, limit)))

    async def due_jobs(self, now: datetime, limit: int) -> list[str]:
        return await self._query(first_column, ("SELECT id FROM jobs WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                                                (self._instant(now), limit)))

    async def waiting_jobs(self, job: str, limit: int, *, by_key: bool = False) -> list[tuple[str, str | None]]:
        kind, _, operation = job.partition(":")
        p, waiting = self._position, self._waiting

        def jobs(rows: list[Any]) -> list[tuple[str, str | None]]:
            return [(r[0], r[1]) for r in rows]

        if not by_key:
            return await self._query(jobs, (f"SELECT id, concurrency_key FROM jobs WHERE type = ? AND operation = ?"
                                            f" AND {waiting} ORDER BY priority DESC, created_at, {p} LIMIT ?",
                                            (kind, operation, limit)))
        # Keys take turns: a key's jobs are numbered, its running jobs first, then its waiting ones in the order
        # they start, and the waiting go by that number, so that the key with the fewest running goes first and
        # a key's burst waits behind every other key's first job; among equals, the key that started a job
        # longest ago (job_keys.last_start) goes first. The running are counted by jobs_key.
        return await self._query(jobs, (
            f"SELECT n.id, n.concurrency_key FROM (SELECT id, concurrency_key, w, priority, created_at, pos,"
            f" row_number() OVER (PARTITION BY concurrency_key ORDER BY w, priority DESC, created_at, pos) AS turn"
            f" FROM (SELECT id, concurrency_key, {waiting} AS w, priority, created_at, {p} AS pos FROM jobs"
            f" WHERE type = ? AND operation = ? AND {waiting}"
            f" UNION ALL SELECT id, concurrency_key, false, 0, created_at, {p} FROM jobs"
            f" WHERE type = ? AND operation = ? AND concurrency_key IS NOT NULL AND status IN ('ready', 'executing'))"
            f" AS candidates) AS n LEFT JOIN job_keys AS k ON k.job = ? AND k.key = n.concurrency_key"
            f" WHERE n.w ORDER BY n.turn, coalesce(k.last_start, 0), n.priority DESC, n.created_at, n.pos LIMIT ?",
            (kind, operation, kind, operation, job, limit)))

    async def count_jobs(self) -> dict[tuple[str, str], int]:
        def counts(rows: list[Any]) -> dict[tuple[str, str], int]:
            return {(r[0], r[1]): int(r[2]) for r in rows}

        return await self._query(counts, ("SELECT status, type, count(*) FROM jobs GROUP BY status, type", ()))

    async def job_errors(self, job_id: str, limit: int, offset: int) -> tuple[list[JobItemError], int]:
        def page(total: list[Any], rows: list[Any]) -> tuple[list[JobItemError], int]:
            return [JobItemError(item=r[0], message=r[1], created_at=r[2]) for r in rows], number(total)

        return await self._query(page, ("SELECT count(*) FROM job_errors WHERE job_id = ?", (job_id,)),
                                 ("SELECT item, message, created_at FROM job_errors WHERE job_id = ? ORDER BY pos"
                                  " LIMIT ? OFFSET ?", (job_id, limit, offset)))

    async def job_data(self, job_id: str, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        def data(rows: list[Any]) -> list[tuple[int, dict[str, Any]]]:
            return [(int(r[0]), json.loads(r[1])) for r in rows]

        return await self._query(data, ("SELECT pos, row FROM job_data WHERE job_id = ? AND pos > ? ORDER BY pos"
                                        " LIMIT ?", (job_id, after, limit)))

    # -- per-type settings ----------------------------------------------------

    async def job_settings(self) -> dict[str, JobSettings]:
        def settings(rows: list[Any]) -> dict[str, JobSettings]:
            return {r[0]: JobSettings.model_validate_json(r[1]) for r in rows}

        self._limits = await self._query(settings, ("SELECT job, doc FROM job_settings ORDER BY job", ()))
        self._limited = {job: s for job, s in self._limits.items() if s.limits_starts}
        return dict(self._limits)

    def limits(self) -> dict[str, JobSettings]:
        return self._limits

    def _remember(self, settings: JobSettings) -> None:
        """Enforce `settings` from now on (they were just saved)."""
        self._limits[settings.job] = settings
        if settings.limits_starts:
            self._limited[settings.job] = settings
        else:
            self._limited.pop(settings.job, None)

    # -- domain objects, records and snapshots --------------------------------

    async def get_object(self, object_id: str, kind: str | None = None) -> StoredObject:
        def stored(rows: list[Any]) -> StoredObject:
            if not rows or (kind is not None and rows[0][1] != kind):
                raise object_not_found(kind or "object", object_id)
            return _object(rows[0])

        return await self._query(stored, ("SELECT id, kind, parent_id, doc FROM objects WHERE id = ?", (object_id,)))

    async def list_objects(self, kind: str, parent_id: str | None = None) -> list[StoredObject]:
        sql, params = "SELECT id, kind, parent_id, doc FROM objects WHERE kind = ?", [kind]
        if parent_id is not None:
            sql += " AND parent_id = ?"
            params.append(parent_id)

        def objects(rows: list[Any]) -> list[StoredObject]:
            return [_object(r) for r in rows]

        return await self._query(objects, (f"{sql} ORDER BY {self._position}", params))

    async def list_records(self, sheet_id: str, limit: int, offset: int) -> tuple[list[Record], int]:
        def page(total: list[Any], rows: list[Any]) -> tuple[list[Record], int]:
            return [_record(r, sheet_id) for r in rows], number(total)

        return await self._query(page, ("SELECT count(*) FROM records WHERE sheet_id = ?", (sheet_id,)),
                                 ("SELECT id, vals, created_at, updated_at FROM records WHERE sheet_id = ?"
                                  " ORDER BY pos LIMIT ? OFFSET ?", (sheet_id, limit, offset)))

    async def list_snapshot_records(self, snapshot_id: str, sheet_id: str, limit: int,
                                    offset: int) -> tuple[list[Record], int]:
        def page(total: list[Any], rows: list[Any]) -> tuple[list[Record], int]:
            return [_record(r, sheet_id) for r in rows], number(total)

        return await self._query(page, ("SELECT count(*) FROM snapshot_records WHERE snapshot_id = ?", (snapshot_id,)),
                                 ("SELECT id, vals, created_at, updated_at FROM snapshot_records WHERE snapshot_id = ?"
                                  " ORDER BY pos LIMIT ? OFFSET ?", (snapshot_id, limit, offset)))

    # -- schedules ------------------------------------------------------------

    async def get_schedule(self, schedule_id: str) -> Schedule:
        def schedule(rows: list[Any]) -> Schedule:
            if not rows:
                raise schedule_not_found(schedule_id)
            return Schedule.model_validate_json(rows[0][0])

        return await self._query(schedule, ("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)))

    async def list_schedules(self) -> list[Schedule]:
        def schedules(rows: list[Any]) -> list[Schedule]:
            return [Schedule.model_validate_json(r[0]) for r in rows]

        # In creation order: an id begins with the time it was made.
        return await self._query(schedules, ("SELECT doc FROM schedules ORDER BY id", ()))

    async def due_schedules(self, now: datetime, limit: int) -> list[str]:
        return await self._query(first_column, ("SELECT id FROM schedules WHERE next_run_at <= ? ORDER BY next_run_at"
                                                " LIMIT ?", (self._instant(now), limit)))

    # -- the event log and cursors --------------------------------------------

    async def read_events(self, after: int, limit: int, job_id: str | None = None) -> list[Event]:
        sql = "SELECT doc FROM events WHERE seq > ?"
        params: list[Any] = [after]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)

        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)

        def events(rows: list[Any]) -> list[Event]:
            return [Event.model_validate_json(r[0]) for r in rows]

        return await self._query(events, (sql, params))

    async def get_cursor(self, name: str) -> int | None:
        def cursor(rows: list[Any]) -> int | None:
            return int(rows[0][0]) if rows else None

        return await self._query(cursor, ("SELECT seq FROM cursors WHERE name = ?", (name,)))

    async def cursors(self) -> dict[str, int]:
        def cursors(rows: list[Any]) -> dict[str, int]:
            return {r[0]: int(r[1]) for r in rows}

        return await self._query(cursors, ("SELECT name, seq FROM cursors", ()))

    # -- users ----------------------------------------------------------------

    async def find_user(self, *, token_hash: str | None = None, name: str | None = None) -> StoredUser | None:
        column, value = ("token_hash", token_hash) if token_hash is not None else ("name", name)

        def user(rows: list[Any]) -> StoredUser | None:
            return stored_user(rows[0]) if rows else None

        return await self._query(user, (f"SELECT {USER_COLUMNS} FROM users WHERE {column} = ?", (value,)))

    async def count_users(self) -> int:
        return await self._query(number, ("SELECT count(*) FROM users", ()))

    async def list_users(self) -> list[StoredUser]:
        def users(rows: list[Any]) -> list[StoredUser]:
            return [stored_user(r) for r in rows]

        return await self._query(users, (f"SELECT {USER_COLUMNS} FROM users ORDER BY name", ()))

    # -- webhooks -------------------------------------------------------------

    async def webhooks(self) -> list[StoredWebhook]:
        def webhooks(rows: list[Any]) -> list[StoredWebhook]:
            return [StoredWebhook(r[0], r[1], json.loads(r[2])) for r in rows]

        return await self._query(webhooks, ("SELECT id, secret, doc FROM webhooks ORDER BY id", ()))

    async def get_webhook(self, webhook_id: str) -> StoredWebhook:
        def webhook(rows: list[Any]) -> StoredWebhook:
            if not rows:
                raise webhook_not_found(webhook_id)
            return StoredWebhook(rows[0][0], rows[0][1], json.loads(rows[0][2]))

        return await self._query(webhook, ("SELECT id, secret, doc FROM webhooks WHERE id = ?", (webhook_id,)))

    async def webhook_deliveries(self, webhook_id: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
        def deliveries(rows: list[Any]) -> list[tuple[int, dict[str, Any]]]:
            return [(int(r[0]), json.loads(r[1])) for r in rows]

        return await self._query(deliveries, ("SELECT pos, doc FROM webhook_deliveries WHERE webhook_id = ?"
                                              " ORDER BY pos DESC LIMIT ?", (webhook_id, limit)))
