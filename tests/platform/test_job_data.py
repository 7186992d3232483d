"""A job's data (result rows as CSV, with a time to live), its error report as CSV, and its attached files."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import aiohttp
import pytest

from listener import Conflict, Gone, Invalid, NotFound, Platform
from listener.client import Client
from listener.platform.csvs import safe_cell
from listener.platform.store.base import StoredObject
from tests.conftest import ManualClock, Server

pytestmark = pytest.mark.anyio


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


async def join(chunks: object) -> bytes:
    return b"".join([c async for c in chunks])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"), ("+1", "'+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"), (None, ""), (True, "true"),
    (-5, "'-5"), ({"a": 1}, '{"a": 1}'), ("Zoë", "Zoë"),
])
def test_cells_that_a_spreadsheet_would_run_are_defused(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


async def test_data_rows_download_as_csv_until_they_expire(platform: Platform, clock: ManualClock) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    with pytest.raises(NotFound, match="no job data"):
        await platform.api.jobs.data_csv(job.id)
    await platform.api.jobs.ack(job.id)
    assert await platform.api.jobs.write_data(job.id, [{"email": "a@x.io", "score": 1}]) == 1
    assert await platform.api.jobs.write_data(job.id, [{"email": "=cmd|' /C calc'!A0", "city": "Lyon"}]) == 2
    rows = parse_csv(await join(await platform.api.jobs.data_csv(job.id)))
    assert rows == [["email", "score", "city"], ["a@x.io", "1", ""], ["'=cmd|' /C calc'!A0", "", "Lyon"]]
    await platform.api.jobs.fail(job.id, error="Half done.")  # partial results stay with a failed job
    clock.advance(24 * 3600 - 1)
    assert len(parse_csv(await join(await platform.api.jobs.data_csv(job.id)))) == 3
    clock.advance(1)
    with pytest.raises(Gone, match="expired at 2026-01-02T12:00:00"):
        await platform.api.jobs.data_csv(job.id)
    with pytest.raises(Conflict, match="expired"):
        await platform.api.jobs.write_data(job.id, [{"late": True}])
    platform.scheduler.retention = timedelta(days=30)
    await platform.scheduler.sweep()  # the hourly prune also drops expired data
    assert await platform.store.job_data(job.id, 0, 10) == []
    with pytest.raises(Gone):
        await platform.api.jobs.data_csv(job.id)


async def test_bad_rows_are_refused(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    with pytest.raises(Invalid, match="rows"):
        await platform.api.jobs.write_data(job.id, [])
    with pytest.raises(Invalid, match="rows"):
        await platform.api.jobs.write_data(job.id, ["not an object"])  # type: ignore[list-item]
    with pytest.raises(NotFound):
        await platform.api.jobs.write_data("jb_missing", [{"a": 1}])
    assert (await platform.api.jobs.get(job.id)).data_rows == 0


async def test_the_error_log_downloads_as_csv(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="import")
    await platform.api.jobs.log_errors(job.id, [{"item": "row 7", "message": "email: not an email"},
                                                {"item": "row 9", "message": "-1 is not an age"}])
    rows = parse_csv(await join(await platform.api.jobs.errors_csv(job.id)))
    assert rows[0] == ["item", "message", "time"]
    assert [r[:2] for r in rows[1:]] == [["row 7", "email: not an email"], ["row 9", "'-1 is not an age"]]
    assert rows[1][2].startswith("2026-01-01T12:00:00")


async def test_files_attach_to_a_job_by_role(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="import")
    now = platform.clock.now()
    for file_id, name in (("fl_in", "voters.csv"), ("fl_err", "errors.csv")):
        doc = {"id": file_id, "name": name, "size": 1, "mimeType": "text/csv", "sha256": "0" * 64,
               "createdAt": now.isoformat()}
        await platform.store.put_objects([StoredObject(file_id, "file", None, doc)], [])
    await platform.api.jobs.attach_file(job.id, "fl_in", role="input")
    attached = await platform.api.jobs.attach_file(job.id, "fl_err", role="error_report")
    assert [(f.file_id, f.role, f.name) for f in attached.files] == [
        ("fl_in", "input", "voters.csv"), ("fl_err", "error_report", "errors.csv")]
    again = await platform.api.jobs.attach_file(job.id, "fl_in", role="input")
    assert len(again.files) == 2, "attaching the same file in the same role twice keeps one"
    with pytest.raises(Invalid, match="fileId"):
        await platform.api.jobs.attach_file(job.id, "fl_missing", role="output")
    with pytest.raises(Invalid, match="role"):
        await platform.api.jobs.attach_file(job.id, "fl_in", role="secret")


async def test_csvs_over_http_with_members_kept_to_their_own_jobs(server: Server, clock: ManualClock) -> None:
    async with Client(server.url, token=server.admin_token) as admin:
        job = await admin.jobs.create(type="workbook", operation="export")
        await admin.jobs.ack(job.id)
        assert await admin.jobs.write_data(job.id, [{"name": "@risky", "n": 2}]) == 1
        await admin.jobs.log_error(job.id, item="row 3", message="bad")
        assert parse_csv(await admin.jobs.data_csv(job.id)) == [["name", "n"], ["'@risky", "2"]]
        assert parse_csv(await admin.jobs.errors_csv(job.id))[1][:2] == ["row 3", "bad"]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.admin_token}"}) as http:
            async with http.get(f"{server.url}/api/v1/jobs/{job.id}/data.csv") as r:
                assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
                assert r.headers["Content-Disposition"] == f'attachment; filename="{job.id}-data.csv"'
                assert r.headers["X-Content-Type-Options"] == "nosniff"
        async with Client(server.url, token=await server.token("mia")) as member:
            with pytest.raises(NotFound):
                await member.jobs.data_csv(job.id)
            with pytest.raises(NotFound):
                await member.jobs.errors_csv(job.id)
        await admin.jobs.complete(job.id)
        clock.advance(24 * 3600)
        with pytest.raises(Gone, match="expired"):
            await admin.jobs.data_csv(job.id)
        empty = await admin.jobs.create(type="workbook", operation="export")
        with pytest.raises(NotFound, match="no job data"):
            await admin.jobs.data_csv(empty.id)


async def test_a_member_reads_the_files_attached_to_their_jobs(server: Server) -> None:
    mia, leo = await server.token("mia"), await server.token("leo")
    async with Client(server.url, token=mia) as member:
        job = await member.jobs.create(type="workbook", operation="import")
    async with Client(server.url, token=server.admin_token) as agent:
        report = await agent.files.upload(b"item,message\r\nrow 2,bad\r\n", name="errors.csv")
        await agent.jobs.attach_file(job.id, report.id, role="error_report")
        other = await agent.files.upload(b"secret", name="other.txt")
    async with Client(server.url, token=mia) as member:
        assert await member.files.read(report.id) == b"item,message\r\nrow 2,bad\r\n"
        with pytest.raises(NotFound):
            await member.files.read(other.id)
    async with Client(server.url, token=leo) as stranger:
        with pytest.raises(NotFound):
            await stranger.files.read(report.id)
