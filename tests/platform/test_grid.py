"""The jobs grid's reads and bulk moves (listing.py, bulk.py, grid.py) over a real server and both stores:
who sees and counts what, the bounds of a search, parts in the counts, and the plans the store reads them with."""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from typing import Any

import asyncpg
import pytest

from listener import Invalid, Platform
from listener.models import MAX_BULK, JobFilter
from listener.platform.listing import store_query
from listener.platform.store.reads import numbered
from listener.platform.store.sqlite import SqliteStore
from tests.conftest import Server
from tests.platform.test_server import assert_error, call

pytestmark = pytest.mark.anyio

API = "/api/v1"


async def test_a_member_counts_lists_and_searches_only_their_own_jobs(server: Server) -> None:
    mia, noah = await server.token("mia"), await server.token("noah")
    mine = await server.platform.api.as_actor("mia").jobs.create(type="voters", operation="geocode",
                                                                 metadata={"batch": "1"})
    theirs = await server.platform.api.as_actor("noah").jobs.create(type="voters", operation="geocode",
                                                                    metadata={"batch": "1"}, info="Noah's")
    await server.platform.api.jobs.cancel(theirs.id)
    status, counts = await call(server, "GET", f"{API}/job-counts", mia)
    assert status == 200 and (counts["ready"], counts["cancelled"], counts["total"]) == (1, 0, 1)
    status, counts = await call(server, "GET", f"{API}/job-counts?createdBy=noah", mia)  # asks for another's: own
    assert (counts["cancelled"], counts["total"]) == (0, 1)
    for query in (f"search={theirs.id}", f"search={theirs.id[:-3]}", "search=noah", "metadata=batch%3D1"):
        status, page = await call(server, "GET", f"{API}/jobs?{query}", mia)
        assert status == 200 and theirs.id not in [j["id"] for j in page["items"]], query
    status, page = await call(server, "GET", f"{API}/jobs?metadata=batch%3D1", mia)
    assert [j["id"] for j in page["items"]] == [mine.id]
    status, counts = await call(server, "GET", f"{API}/job-counts", server.admin_token)
    assert (counts["ready"], counts["cancelled"], counts["total"]) == (1, 1, 2)

    body = {"action": "cancel", "ids": [mine.id]}
    assert_error(*await call(server, "POST", f"{API}/jobs/bulk", mia, json=body), 403, "forbidden")
    assert_error(*await call(server, "POST", f"{API}/jobs/bulk", noah, json=body), 403, "forbidden")
    assert (await server.platform.api.jobs.get(mine.id)).status.value == "ready"


async def test_bulk_errors_name_their_field_and_change_nothing(server: Server) -> None:
    jobs = server.platform.api.jobs
    for _ in range(3):
        await jobs.create(type="voters", operation="geocode")
    head = await server.platform.store.head()
    bulk = f"{API}/jobs/bulk"
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"action": "cancel", "filter": {"type": ["voters"]}, "expectedCount": 2}, 409, "conflict", "expectedCount"),
        ({"action": "cancel", "filter": {"type": ["voters"]}}, 422, "invalid", "expectedCount"),
        ({"action": "cancel", "filter": {"tpye": ["voters"]}, "expectedCount": 3}, 422, "invalid", "filter.tpye"),
        ({"action": "pause", "ids": ["jb_1"]}, 422, "invalid", "action"),
        ({"action": "cancel", "ids": []}, 422, "invalid", "ids"),
        ({"action": "cancel", "filter": {"status": ["done"]}, "expectedCount": 3}, 422, "invalid", "filter.status.0"),
    ]
    for body, status, code, field in cases:
        message = assert_error(*await call(server, "POST", bulk, server.admin_token, json=body), status, code)
        assert field in message, (body, message)
    status, answer = await call(server, "POST", bulk, server.admin_token,
                                json={"action": "cancel", "filter": {"type": ["voters"]}, "expectedCount": 3})
    assert status == 200 and (answer["matched"], answer["changed"], answer["refused"]) == (3, 3, [])
    assert set(answer) == {"action", "matched", "changed", "changedIds", "refused"}
    assert await server.platform.store.head() == head + 3, "one job:cancelled each"
    status, answer = await call(server, "POST", bulk, server.admin_token,
                                json={"action": "cancel", "ids": answer["changedIds"][:1]})
    assert answer["refused"][0]["code"] == "conflict" and "it is cancelled" in answer["refused"][0]["message"]
    assert_error(*await call(server, "GET", f"{API}/jobs?sort=fastest", server.admin_token), 422, "invalid")
    assert_error(*await call(server, "GET", f"{API}/job-counts?status=ready", server.admin_token), 422, "invalid")


async def test_a_filter_over_the_bulk_maximum_is_refused_naming_it(platform: Platform) -> None:
    store: Any = platform.store
    job = await platform.api.jobs.create(type="voters", operation="geocode")
    await _copy_job(store, job.id, MAX_BULK)  # MAX_BULK + 1 ready jobs
    assert (await platform.api.jobs.counts()).ready == MAX_BULK + 1
    with pytest.raises(Invalid) as raised:
        await platform.api.jobs.bulk("cancel", filter={"status": ["ready"]}, expected_count=MAX_BULK)
    assert raised.value.details[0]["field"] == "filter" and "1,001 jobs match" in raised.value.message


async def test_text_and_metadata_look_through_a_bounded_window_of_the_newest_jobs(platform: Platform) -> None:

    old = await platform.api.jobs.create(type="voters", operation="geocode", info="needle", metadata={"k": "v"})
    for _ in range(3):
        await platform.api.jobs.create(type="voters", operation="geocode")
    query = store_query(JobFilter(search="needle"))
    assert query.text == "needle" and query.id_prefix is None and query.window == 10_000
    found, total = await platform.store.list_jobs(query)
    assert [j.id for j in found] == [old.id] and total == 1
    for wide in (store_query(JobFilter(search="needle")), store_query(JobFilter(metadata=["k=v"]))):
        assert (await platform.store.list_jobs(wide))[1] == 1
        narrow = dataclasses.replace(wide, window=3)
        assert await platform.store.list_jobs(narrow) == ([], 0), "older than the window: not looked at"
    assert store_query(JobFilter(search=f" {old.id} ")).id_prefix == old.id


async def test_counts_leave_parts_out_when_asked(platform: Platform) -> None:
    jobs = platform.api.jobs
    parent = await jobs.ack((await jobs.create(type="workbook", operation="import")).id)
    await jobs.split(parent.id, parts=3)
    counts = await jobs.counts()
    assert (counts.executing, counts.ready, counts.total) == (1, 3, 4)
    top = await jobs.counts(is_part=False)
    assert (top.executing, top.ready, top.total) == (1, 0, 1)
    parts = await jobs.counts(is_part=True, type="workbook")
    assert (parts.ready, parts.total) == (3, 3)


PLANS = {
    # the statement, its parameters, and what its plan must read (SQLite: EXPLAIN QUERY PLAN's words; PostgreSQL:
    # the index EXPLAIN names, with sequential scans off so that a tiny table does not hide the index)
    "counts": ("SELECT status, count(*) FROM jobs GROUP BY status", [], "COVERING INDEX jobs_status", "Index"),
    "member counts": ("SELECT status, count(*) FROM jobs WHERE created_by = ? GROUP BY status", ["mia"],
                      "COVERING INDEX jobs_created_by_status", "jobs_created_by_status"),
    "parts counts": ("SELECT status, count(*) FROM jobs WHERE parent_id IS NOT NULL GROUP BY status", [],
                     "COVERING INDEX jobs_part_status", "jobs_part_status"),
    "by duration": ("SELECT doc FROM jobs WHERE duration IS NOT NULL ORDER BY duration DESC, {p} DESC LIMIT 25", [],
                    "INDEX jobs_duration", "jobs_duration"),
    "by start": ("SELECT doc FROM jobs WHERE started_at IS NOT NULL ORDER BY started_at, {p} LIMIT 25", [],
                 "INDEX jobs_started", "jobs_started"),
    "by end": ("SELECT doc FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, {p} DESC LIMIT 25", [],
               "INDEX jobs_finished", "jobs_finished"),
    "id prefix": ("SELECT doc FROM jobs WHERE {id} >= ? AND {id} < ?", ["jb_01", "jb_01\U0010ffff"],
                  "INDEX sqlite_autoindex_jobs_1", "jobs_id_bytes"),
}


@pytest.mark.parametrize("name", list(PLANS))
async def test_the_grid_reads_from_indexes(platform: Platform, name: str) -> None:
    store: Any = platform.store
    sql, params, sqlite_plan, postgres_index = PLANS[name]
    sql = sql.replace("{p}", store._position).replace("{id}", store._id_column)
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db:
            plan = " / ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert sqlite_plan in plan, plan
        return
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {numbered(sql)}", *params))
    finally:
        await conn.close()
    assert postgres_index in plan and "Seq Scan" not in plan, plan


async def _copy_job(store: Any, job_id: str, copies: int) -> None:
    """`copies` more rows like the job's (new ids, same document otherwise), straight into the table."""
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db:
            db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                       " INSERT INTO jobs (id, status, type, operation, created_by, created_at, doc, ctx, due_at)"
                       " SELECT id || '_' || i, status, type, operation, created_by, created_at,"
                       " json_set(doc, '$.id', id || '_' || i), ctx, due_at FROM jobs, n WHERE id = ?",
                       (copies, job_id))
            db.commit()
        return
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        await conn.execute("INSERT INTO jobs (id, status, type, operation, created_by, created_at, doc, ctx, due_at)"
                           " SELECT id || '_' || i, status, type, operation, created_by, created_at,"
                           " jsonb_set(doc, '{id}', to_jsonb(id || '_' || i)), ctx, due_at"
                           " FROM jobs, generate_series(1, $2) AS i WHERE id = $1", job_id, copies)
    finally:
        await conn.close()
