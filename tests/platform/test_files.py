"""Files: streamed uploads and downloads over a real server and in-process, on both backends.

Limits (at, under, over; declared up front and found while streaming), byte-for-byte downloads
with safe headers, names made safe, members kept to their own files, events, deletes that remove
the bytes, actions that start `file:<op>` jobs, and the order of writes that keeps a row from ever
pointing at missing bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import asyncpg
import pytest

from listener import Event, Invalid, JobStatus, Listener, NotFound, Platform, TooLarge
from listener.client import Client
from listener.models import File
from listener.platform.auth import Users
from listener.platform.blobs import DiskBlobs, PostgresBlobs
from listener.platform.domains import Domains
from listener.platform.files import FileService, content_disposition, safe_name, served_type
from listener.platform.server import serve
from listener.platform.store.base import NewEvent, StoredObject
from tests.conftest import ManualClock, Server
from tests.platform.test_server import API, assert_error, call

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024
EXTRACT = {"operation": "extract", "label": "Extract rows"}


# -- helpers ------------------------------------------------------------------------------------


def form(file: Any = None, *, filename: str | None = "data.bin", content_type: str = "application/octet-stream",
         fields: Sequence[tuple[str, str]] = (), after: Sequence[tuple[str, str]] = (),
         disposition: str | None = None) -> aiohttp.MultipartWriter:
    """A multipart/form-data body as a browser sends it: names raw (UTF-8), not percent-encoded."""
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in fields:
        writer.append(value).set_content_disposition("form-data", quote_fields=False, name=name)
    if file is not None:
        payload = aiohttp.AsyncIterablePayload(file) if hasattr(file, "__aiter__") else io.BytesIO(file)
        part = writer.append(payload, {"Content-Type": content_type})
        params = {"name": "file"} if filename is None else {"name": "file", "filename": filename}
        part.set_content_disposition("form-data", quote_fields=False, **params)
        if disposition is not None:
            part.headers[aiohttp.hdrs.CONTENT_DISPOSITION] = disposition
    for name, value in after:
        writer.append(value).set_content_disposition("form-data", quote_fields=False, name=name)
    return writer


async def upload(server: Server, token: str, body: Any) -> tuple[int, Any]:
    return await call(server, "POST", f"{API}/files", token, data=body)


async def download(server: Server, token: str, file_id: str) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}{API}/files/{file_id}/content",
                                                               headers=headers) as response:
        return response.status, await response.read(), response.headers


async def chunks(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def stored_bytes(platform: Platform) -> list[str]:
    """What the blob storage holds: file names in the directory (partial ones too), or keys of large objects."""
    blobs = platform.api.files.blobs
    if isinstance(blobs, DiskBlobs):
        return sorted(os.listdir(blobs.directory)) if blobs.directory.exists() else []
    assert isinstance(blobs, PostgresBlobs)
    return sorted(r[0] for r in await pg_rows(platform, "SELECT key FROM file_blobs"))


async def pg_rows(platform: Platform, sql: str, *args: Any) -> list[Any]:
    store: Any = platform.store
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        if await conn.fetchval("SELECT to_regclass('file_blobs')") is None:
            return []
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def file_rows(platform: Platform) -> list[str]:
    return [o.id for o in await platform.store.list_objects("file")]


@pytest.fixture
async def small(db_url: str, clock: ManualClock) -> AsyncIterator[Server]:
    """A real server whose platform takes files of at most LIMIT bytes."""
    async with Platform.open(db_url, clock=clock, sweep_interval=None, max_file_size=LIMIT) as platform:
        users = Users(platform.store, platform.clock)
        admin_token = await users.ensure_admin()
        assert admin_token is not None
        async with anyio.create_task_group() as tg:
            port = await tg.start(functools.partial(serve, platform, port=0, users=users, shutdown_timeout=5))
            yield Server(f"http://127.0.0.1:{port}", platform, users, admin_token)
            tg.cancel_scope.cancel()


# -- the size limit -------------------------------------------------------------------------------


async def test_uploads_at_and_under_the_limit_are_kept_and_one_byte_over_is_413_keeping_nothing(
        small: Server) -> None:
    token = await small.token("alice")
    under, at, over = os.urandom(LIMIT - 1), os.urandom(LIMIT), os.urandom(LIMIT + 1)
    status, kept_under = await upload(small, token, form(under))
    assert status == 201 and kept_under["size"] == LIMIT - 1, kept_under
    status, kept_at = await upload(small, token, form(at))
    assert status == 201 and kept_at["size"] == LIMIT, kept_at
    assert kept_at["sha256"] == hashlib.sha256(at).hexdigest()
    before = (await file_rows(small.platform), await stored_bytes(small.platform))
    assert before == ([kept_under["id"], kept_at["id"]], sorted([kept_under["id"], kept_at["id"]]))

    # Its Content-Length (one byte over, plus the form) is within what a form may add: found while streaming.
    status, body = await upload(small, token, form(over))
    message = assert_error(status, body, 413, "too_large")
    assert str(LIMIT) in message and "64 KiB" in message and body["error"]["details"] == {"limit": LIMIT}
    # Chunked, with no Content-Length at all: found while streaming too.
    status, body = await upload(small, token, form(chunks(over)))
    assert_error(status, body, 413, "too_large")
    assert (await file_rows(small.platform), await stored_bytes(small.platform)) == before

    # The same limit in-process, for bytes and for a stream.
    api = small.platform.api.as_actor("alice")
    with pytest.raises(TooLarge, match=str(LIMIT)):
        await api.files.upload(over, name="big.bin")
    with pytest.raises(TooLarge, match=str(LIMIT)):
        await api.files.upload(chunks(over), name="big.bin")
    assert (await file_rows(small.platform), await stored_bytes(small.platform)) == before
    assert (await api.files.upload(chunks(at), name="exact.bin")).size == LIMIT


async def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_sent(small: Server) -> None:
    port = int(small.url.rsplit(":", 1)[1])
    head = (f"POST {API}/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {small.admin_token}\r\n"
            f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {10**12}\r\n\r\n--xyz\r\n")
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head.encode())
        answer = b""
        with anyio.fail_after(5):  # the server answers without waiting for a terabyte that never comes
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive()
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert await file_rows(small.platform) == [] and await stored_bytes(small.platform) == []


async def test_the_client_streams_a_path_and_gets_too_large_past_the_limit(small: Server, tmp_path: Path) -> None:
    token = await small.token("alice")
    fits, too_big = tmp_path / "fits.csv", tmp_path / "too big.csv"
    fits.write_bytes(b"a,b\n" * (LIMIT // 4))
    too_big.write_bytes(b"a,b\n" * (LIMIT // 4) + b"!")
    async with Client(small.url, token=token) as client:
        file = await client.files.upload(fits, space_id=None)
        assert (file.name, file.size, file.mime_type) == ("fits.csv", LIMIT, "text/csv")
        with pytest.raises(TooLarge, match=str(LIMIT)):
            await client.files.upload(too_big)
        with pytest.raises(Invalid, match="name"):
            await client.files.upload(b"x", name="a\x00b")
        assert [f.id for f in await client.files.list()] == [file.id]
    assert await stored_bytes(small.platform) == [file.id]


# -- downloads ---------------------------------------------------------------------------------


async def test_a_download_is_the_upload_byte_for_byte_with_safe_headers(server: Server) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # larger than the server's 1 MiB JSON body limit
    space = await server.platform.api.spaces.create(name="Acme")
    status, file = await upload(server, server.admin_token, form(
        data, filename="export.csv", content_type="text/csv; charset=utf-8",
        fields=[("spaceId", space.id), ("actions", '[{"operation": "extract", "label": "Extract"}]'),
                ("metadata", '{"rows": 3}')]))
    assert status == 201, file
    assert file["id"].startswith("fl_") and file["name"] == "export.csv" and file["size"] == len(data)
    assert (file["mimeType"], file["spaceId"], file["metadata"]) == ("text/csv", space.id, {"rows": 3})
    assert file["sha256"] == hashlib.sha256(data).hexdigest() and file["createdBy"] == "admin"
    assert [a["operation"] for a in file["actions"]] == ["extract"]

    status, got, headers = await download(server, server.admin_token, file["id"])
    assert status == 200 and got == data
    assert headers["Content-Length"] == str(len(data))
    assert headers["Content-Type"] == "text/csv"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == 'attachment; filename="export.csv"'
    assert await call(server, "GET", f"{API}/files/{file['id']}", server.admin_token) == (200, file)
    status, listed = await call(server, "GET", f"{API}/files?spaceId={space.id}", server.admin_token)
    assert status == 200 and listed == {"items": [file]}
    status, listed = await call(server, "GET", f"{API}/files?spaceId=sp_other", server.admin_token)
    assert status == 200 and listed == {"items": []}


@pytest.mark.parametrize(("name", "given", "served"), [
    ("page.html", "text/html", "application/octet-stream"),
    ("logo.svg", "image/svg+xml", "application/octet-stream"),
    ("data.xml", "application/xml", "application/octet-stream"),
    ("photo.png", "image/png", "image/png"),
    ("notes.txt", None, "text/plain"),
])
async def test_types_a_browser_could_run_are_served_as_octet_stream(
        server: Server, name: str, given: str | None, served: str) -> None:
    body = b"<svg onload=alert(1)><script>alert(1)</script></svg>"
    status, file = await upload(server, server.admin_token,
                                form(body, filename=name, content_type=given or "application/octet-stream"))
    assert status == 201 and file["mimeType"] == (given or "text/plain"), file  # stored as given
    status, got, headers = await download(server, server.admin_token, file["id"])
    assert (status, got) == (200, body)
    assert headers["Content-Type"] == served and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith("attachment;")


async def test_the_client_uploads_streams_downloads_and_deletes(server: Server, tmp_path: Path) -> None:
    token = await server.token("alice")
    data = os.urandom(1_500_000)
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    async with Client(server.url, token=token) as client:
        from_path = await client.files.upload(source, name="résumé 📄.csv", actions=[EXTRACT])
        from_stream = await client.files.upload(chunks(data, 65_536), name="streamed.bin", metadata={"k": "v"})
        from_bytes = await client.files.upload(b"hello", mime_type="text/plain")
        assert (from_path.name, from_path.mime_type, from_path.size) == ("résumé 📄.csv", "text/csv", len(data))
        assert (from_stream.size, from_stream.metadata, from_stream.sha256) == (
            len(data), {"k": "v"}, hashlib.sha256(data).hexdigest())
        assert (from_bytes.name, from_bytes.mime_type) == ("file", "text/plain")
        assert await client.files.get(from_path.id) == from_path
        assert [f.id for f in await client.files.list()] == [from_path.id, from_stream.id, from_bytes.id]
        assert await client.files.read(from_bytes.id) == b"hello"
        streamed = b"".join([chunk async for chunk in client.files.stream(from_stream.id)])
        assert streamed == data
        saved = await client.files.download(from_path.id, tmp_path / "out.bin")
        assert saved.read_bytes() == data and not (tmp_path / "out.bin.part").exists()
        await client.files.delete(from_stream.id)
        with pytest.raises(NotFound, match=from_stream.id):
            await client.files.get(from_stream.id)
        with pytest.raises(NotFound):
            await client.files.download(from_stream.id, tmp_path / "gone.bin")
        assert not (tmp_path / "gone.bin").exists() and not (tmp_path / "gone.bin.part").exists()
    assert await stored_bytes(server.platform) == sorted([from_path.id, from_bytes.id])


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("/abs/path/report.pdf", "report.pdf"),
    ("..", "file"),
    ("", "file"),
    ("  ", "file"),
    ("bell\x07and\x1fescape\x1b.txt", "bellandescape.txt"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("résumé 📄.csv", "résumé 📄.csv"),
    ("Cafe\u0301.txt", "Café.txt"),
    ("trailing dots...", "trailing dots"),
])
def test_safe_name(given: str, kept: str) -> None:
    assert safe_name(given) == kept


def test_a_long_name_is_cut_to_255_bytes_keeping_its_extension() -> None:
    name = safe_name("a" * 396 + ".csv")
    assert len(name.encode()) == 255 and name.endswith(".csv") and set(name[:-4]) == {"a"}
    emoji = safe_name("📄" * 100 + ".csv")  # 4 bytes each: cut on a character boundary
    assert len(emoji.encode()) <= 255 and emoji.endswith(".csv") and set(emoji[:-4]) == {"📄"}
    assert len(safe_name("x" * 300).encode()) == 255


def test_content_disposition_has_an_ascii_name_and_the_unicode_one() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition('a"b\\c.txt') == "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%5Cc.txt"
    assert served_type("text/csv") == "text/csv" and served_type("text/html") == "application/octet-stream"


async def test_odd_names_are_stored_safely_and_served_under_a_safe_name(server: Server) -> None:
    t = server.admin_token
    long_name = "b" * 396 + ".csv"
    cases = [("../../etc/passwd", "passwd"), (long_name, "b" * 251 + ".csv"), ("résumé 📄.csv", "résumé 📄.csv")]
    ids = []
    for given, kept in cases:
        status, file = await upload(server, t, form(b"x,y\n", filename=given))
        assert status == 201 and file["name"] == kept, file
        ids.append(file["id"])
    # A name given as a field wins over the part's filename, and loses its control characters.
    status, file = await upload(server, t, form(b"x", filename="ignored.bin", fields=[("name", "a\x07b\u202e.txt")]))
    assert status == 201 and (file["name"], file["mimeType"]) == ("ab.txt", "text/plain"), file
    ids.append(file["id"])

    status, _, headers = await download(server, t, ids[0])
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="passwd"'
    _, _, headers = await download(server, t, ids[2])
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"resume _.csv\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%F0%9F%93%84.csv")
    # The bytes are stored under the file ids, whatever the names.
    assert await stored_bytes(server.platform) == sorted(ids)
    blobs = server.platform.api.files.blobs
    if isinstance(blobs, DiskBlobs):
        assert not (blobs.directory.parent / "etc").exists() and not Path("/etc/passwd.part").exists()


@pytest.mark.parametrize("how", ["name field", "encoded filename"])
async def test_a_nul_in_a_name_is_refused_naming_the_field(server: Server, how: str) -> None:
    if how == "name field":
        body = form(b"data", fields=[("name", "evil\x00.txt")])
    else:
        body = form(b"data", disposition="form-data; name=\"file\"; filename*=UTF-8''evil%00.txt")
    status, answer = await upload(server, server.admin_token, body)
    assert "name" in assert_error(status, answer, 422, "invalid")
    assert answer["error"]["details"][0]["field"] == "name"
    assert await file_rows(server.platform) == [] and await stored_bytes(server.platform) == []
    with pytest.raises(Invalid, match="name"):
        await server.platform.api.files.upload(b"data", name="a\x00b")


@pytest.mark.parametrize(("body", "field"), [
    (lambda: form(b"data", after=[("spaceId", "sp_x")]), "spaceId"),       # a field after the file
    (lambda: form(None, fields=[("name", "x")]), "file"),                   # no file
    (lambda: form(b"data", fields=[("owner", "bob")]), "owner"),            # not a field of an upload
    (lambda: form(b"data", fields=[("actions", "[{]")]), "actions"),        # not JSON
    (lambda: form(b"data", fields=[("actions", '{"a": 1}')]), "actions"),   # not a list
    (lambda: form(b"data", fields=[("actions", '[{"operation": "x"}]')]), "actions.0.label"),
    (lambda: form(b"data", fields=[("metadata", "[1]")]), "metadata"),
    (lambda: form(b"data", fields=[("mimeType", "not a type")]), "mimeType"),
])
async def test_a_bad_form_is_refused_and_nothing_is_kept(server: Server, body: Any, field: str) -> None:
    status, answer = await upload(server, server.admin_token, body())
    assert field in assert_error(status, answer, 422, "invalid")
    assert await file_rows(server.platform) == [] and await stored_bytes(server.platform) == []


async def test_a_body_that_is_not_a_form_is_refused(server: Server) -> None:
    status, answer = await call(server, "POST", f"{API}/files", server.admin_token, json={"file": "x"})
    assert "multipart/form-data" in assert_error(status, answer, 422, "invalid")
    status, answer = await upload(server, server.admin_token, form(b"x", fields=[("spaceId", "sp_nope")]))
    assert "sp_nope" in assert_error(status, answer, 404, "not_found")
    assert await stored_bytes(server.platform) == []
    # An empty field is one a person left blank: not given.
    blank = [("spaceId", ""), ("name", ""), ("mimeType", ""), ("actions", ""), ("metadata", "")]
    status, file = await upload(server, server.admin_token, form(b"x", filename="a.txt", fields=blank))
    assert status == 201 and (file["spaceId"], file["name"], file["mimeType"], file["actions"], file["metadata"]) == (
        None, "a.txt", "text/plain", [], {}), file


# -- who sees what -----------------------------------------------------------------------------


async def test_a_member_sees_only_its_own_files_and_an_admin_sees_all(server: Server) -> None:
    alice, bob = await server.token("alice"), await server.token("bob")
    status, file = await upload(server, alice, form(b"alice's secret", filename="secret.txt",
                                                    fields=[("actions", '[{"operation": "extract", "label": "X"}]')]))
    assert status == 201 and file["createdBy"] == "alice"
    status, mine = await upload(server, bob, form(b"bob's", filename="bob.txt"))
    assert status == 201
    path = f"{API}/files/{file['id']}"
    for method, url in [("GET", path), ("GET", f"{path}/content"), ("DELETE", path)]:
        status, body = await call(server, method, url, bob)
        assert file["id"] in assert_error(status, body, 404, "not_found")
    status, body = await call(server, "POST", f"{API}/actions/trigger", bob,
                              json={"sourceId": file["id"], "operation": "extract"})
    assert_error(status, body, 404, "not_found")
    assert await call(server, "GET", f"{API}/files", bob) == (200, {"items": [mine]})

    assert await call(server, "GET", path, alice) == (200, file)
    assert (await download(server, alice, file["id"]))[:2] == (200, b"alice's secret")
    assert (await download(server, server.admin_token, file["id"]))[:2] == (200, b"alice's secret")
    status, listed = await call(server, "GET", f"{API}/files", server.admin_token)
    assert [f["id"] for f in listed["items"]] == [file["id"], mine["id"]]
    # Nor does bob see the events of alice's file; the admin does.
    status, events = await call(server, "GET", f"{API}/events", bob)
    assert [(e["topic"], e["context"]["fileId"]) for e in events["items"]] == [("file:created", mine["id"])]
    status, events = await call(server, "GET", f"{API}/events", server.admin_token)
    assert [e["context"]["fileId"] for e in events["items"] if e["topic"] == "file:created"] == [file["id"],
                                                                                              mine["id"]]
    assert await call(server, "DELETE", path, server.admin_token) == (204, "")


# -- events, deletes, actions ---------------------------------------------------------------------


async def test_created_and_deleted_events_carry_the_file_and_its_space(platform: Platform) -> None:
    api = platform.api.as_actor("alice")
    space = await api.spaces.create(name="Acme", namespace="red")
    seen: list[Event] = []
    deleted = anyio.Event()
    listener = Listener()

    @listener.on("file:*", space=space.id)
    def on_file(event: Event) -> None:
        seen.append(event)
        if event.topic == "file:deleted":
            deleted.set()

    async with platform.running(listener):
        await api.files.upload(b"elsewhere", name="loose.txt")  # no space: not this listener's
        file = await api.files.upload(b"a,b\n1,2\n", name="rows.csv", space_id=space.id)
        await api.files.delete(file.id)
        with anyio.fail_after(5):
            await deleted.wait()
    assert [e.topic for e in seen] == ["file:created", "file:deleted"]
    for event in seen:
        ctx = event.context
        assert (ctx.file_id, ctx.space_id, ctx.namespace, ctx.actor_id) == (file.id, space.id, "red", "alice")
        assert ctx.job_id is None
        assert event.payload == {"name": "rows.csv", "size": 8, "mimeType": "text/csv", "createdBy": "alice"}
    assert seen[0].seq < seen[1].seq


async def test_delete_removes_the_row_then_the_bytes(platform: Platform) -> None:
    api = platform.api.as_actor("alice")
    keep = await api.files.upload(b"keep", name="keep.txt")
    file = await api.files.upload(os.urandom(600_000), name="gone.bin")
    oids = []
    if isinstance(api.files.blobs, PostgresBlobs):
        oids = [r[0] for r in await pg_rows(platform, "SELECT oid FROM file_blobs WHERE key = $1", file.id)]
        assert len(oids) == 1
    assert await stored_bytes(platform) == sorted([keep.id, file.id])
    head = await platform.store.head()
    await api.files.delete(file.id)
    assert await stored_bytes(platform) == [keep.id]
    assert await file_rows(platform) == [keep.id]
    with pytest.raises(NotFound, match=file.id):
        await api.files.read(file.id)
    with pytest.raises(NotFound, match=file.id):
        await api.files.delete(file.id)
    assert [e.topic for e in await platform.store.read_events(head, 10)] == ["file:deleted"]  # one, not two
    if oids:  # the large object itself is gone, not only its row
        assert await pg_rows(platform, "SELECT oid FROM pg_largeobject_metadata WHERE oid = $1", oids[0]) == []
    assert await api.files.read(keep.id) == b"keep"


async def test_an_action_on_a_file_runs_a_file_job_sourced_from_it(platform: Platform) -> None:
    space = await platform.api.spaces.create(name="Acme")
    api = platform.api.as_actor("alice")
    needs_data = {"operation": "count", "label": "Count", "constraints": [{"type": "hasData"}]}
    file = await api.files.upload(b"a,b\n1,2\n3,4\n", name="rows.csv", space_id=space.id,
                                  actions=[EXTRACT, needs_data])
    empty = await api.files.upload(b"", name="empty.csv", actions=[needs_data])
    listener = Listener()
    handled: list[Event] = []

    @listener.on("job:ready", job="file:extract")
    async def extract(event: Event) -> None:
        handled.append(event)
        job = await event.api.jobs.ack(event.context.job_id or "")
        text = (await event.api.files.read(job.source or "")).decode()
        await event.api.jobs.complete(job.id, outcome={"message": f"{len(text.splitlines()) - 1} rows"})

    async with platform.running(listener):
        job = await api.actions.trigger(file.id, "extract")
        assert (job.job, job.type, job.operation, job.source) == ("file:extract", "file", "extract", file.id)
        job = await api.jobs.wait(job.id, timeout=5)
    assert job.status is JobStatus.COMPLETE and job.outcome is not None and job.outcome.message == "2 rows"
    assert (handled[0].context.file_id, handled[0].context.space_id) == (file.id, space.id)
    assert (await api.actions.trigger(file.id, "count")).source == file.id
    with pytest.raises(Invalid, match="needs data"):
        await api.actions.trigger(empty.id, "count")
    with pytest.raises(NotFound, match="extract"):
        await api.actions.trigger(empty.id, "extract")
    with pytest.raises(Invalid, match="mounted twice"):
        await api.files.upload(b"x", actions=[EXTRACT, EXTRACT])


async def test_an_action_on_a_file_over_http_answers_202_with_the_job(server: Server) -> None:
    alice = await server.token("alice")
    status, file = await upload(server, alice, form(b"x", fields=[("actions", '[{"operation": "extract", '
                                                                               '"label": "X"}]')]))
    assert status == 201
    status, job = await call(server, "POST", f"{API}/actions/trigger", alice,
                             json={"sourceId": file["id"], "operation": "extract"})
    assert status == 202 and (job["type"], job["operation"], job["source"]) == ("file", "extract", file["id"])
    assert job["createdBy"] == "alice"


# -- consistency across a crash -----------------------------------------------------------------------


async def test_bytes_without_a_row_are_invisible_and_swept(platform: Platform) -> None:
    api = platform.api
    real = await api.files.upload(b"real", name="real.txt")
    # A crash after the bytes were written, before their row: bytes no file points at.
    await api.files.blobs.write("fl_orphan0000000000000000", chunks(b"orphan"))
    assert await stored_bytes(platform) == sorted([real.id, "fl_orphan0000000000000000"])
    assert [f.id for f in await api.files.list()] == [real.id]
    with pytest.raises(NotFound):
        await api.files.get("fl_orphan0000000000000000")
    with pytest.raises(NotFound):
        await api.files.read("fl_orphan0000000000000000")
    assert await api.files.sweep_orphans() == 0  # too recent: it may be an upload about to write its row
    assert await api.files.sweep_orphans(older_than=timedelta(0)) == 1
    assert await stored_bytes(platform) == [real.id]
    assert await api.files.read(real.id) == b"real"


async def test_a_stream_that_fails_midway_leaves_no_row_and_no_bytes(platform: Platform) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 100_000
        yield b"b" * 100_000
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await platform.api.files.upload(broken(), name="half.bin")
    assert await file_rows(platform) == [] and await stored_bytes(platform) == []


class FailingStore:
    """The platform's store, but the write of a file's row fails (as a lost database would)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_objects(self, objects: list[StoredObject], events: list[NewEvent]) -> list[Event]:
        raise ConnectionError("the database went away")


async def test_a_row_that_cannot_be_written_takes_its_bytes_with_it(platform: Platform, clock: ManualClock) -> None:
    files = FileService(Domains(FailingStore(platform.store), clock, "alice"),  # type: ignore[arg-type]
                        platform.api.files.blobs)
    with pytest.raises(ConnectionError):
        await files.upload(os.urandom(300_000), name="lost.bin")
    assert await file_rows(platform) == [] and await stored_bytes(platform) == []


async def test_the_default_directory_is_beside_the_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "data" / "listener.db"
    async with Platform.open(f"sqlite:///{db}") as platform:
        file = await platform.api.files.upload(b"hi", name="hi.txt")
    assert (tmp_path / "data" / "listener.db.files" / file.id).read_bytes() == b"hi"
    elsewhere = tmp_path / "files"
    async with Platform.open(f"sqlite:///{db}", files_dir=elsewhere) as platform:
        other = await platform.api.files.upload(b"there", name="there.txt")
        assert await platform.api.files.read(other.id) == b"there"
        assert isinstance(await platform.api.files.get(file.id), File)
    assert (elsewhere / other.id).read_bytes() == b"there"
    with pytest.raises(Invalid, match="max_file_size"):
        async with Platform.open(f"sqlite:///{db}", max_file_size=0):
            pass
