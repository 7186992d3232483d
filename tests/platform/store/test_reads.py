"""The reads both stores share: their statements as each backend runs them, and the answers they read back."""

from __future__ import annotations

import pytest

from listener import NotFound, Platform
from listener.platform.store.base import JobQuery, StoredObject
from listener.platform.store.reads import numbered

pytestmark = pytest.mark.anyio


def test_postgresql_gets_the_marks_numbered_in_order() -> None:
    assert numbered("SELECT doc FROM events WHERE seq > ? AND job_id = ? ORDER BY seq LIMIT ?") == (
        "SELECT doc FROM events WHERE seq > $1 AND job_id = $2 ORDER BY seq LIMIT $3")
    assert numbered("SELECT count(*) FROM users") == "SELECT count(*) FROM users"
    assert numbered("status = ANY(?::text[])") == "status = ANY($1::text[])"


async def test_an_unknown_id_or_the_wrong_kind_is_not_found_on_both_stores(platform: Platform) -> None:
    store = platform.store
    with pytest.raises(NotFound, match=r"^Job jb_nope not found\.$") as job:
        await store.get_job("jb_nope")
    assert job.value.details == {"jobId": "jb_nope"}
    await store.put_objects([StoredObject("sp_1", "space", None, {"name": "S"})], [])
    assert await store.get_object("sp_1", "space") == StoredObject("sp_1", "space", None, {"name": "S"})
    with pytest.raises(NotFound, match=r"^Sheet sp_1 not found\.$") as wrong_kind:
        await store.get_object("sp_1", "sheet")
    assert wrong_kind.value.details == {"id": "sp_1"}
    with pytest.raises(NotFound, match=r"^Object sp_2 not found\.$"):
        await store.get_object("sp_2")


async def test_pages_read_after_a_position_and_count_the_whole(platform: Platform) -> None:
    jobs = [await platform.api.jobs.create(type="workbook", operation="export") for _ in range(5)]
    store = platform.store
    first = await store.ready_jobs(0, 2)
    rest = await store.ready_jobs(first[-1][0], 10)
    assert [job.id for _, job, _ in first + rest] == [j.id for j in jobs], "oldest first, none twice"
    page, total = await store.list_jobs(JobQuery(limit=2, offset=1))
    assert total == 5 and [j.id for j in page] == [jobs[3].id, jobs[2].id], "newest first"
