"""Sheet snapshots on both stores and both transports: create, list, get, records marked against the sheet
now, restore through a commit, delete; durable across a restart; who may do what; bad input named."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from listener import Event, Invalid, Listener, NotFound, Platform
from listener.api import Api
from listener.client import Client, ClientSnapshots
from listener.models import Record, Workbook
from listener.platform.snapshots import SnapshotService
from listener.snapshots import RecordChange, SnapshotsApi
from tests.conftest import ManualClock, Server
from tests.conftest import snapshot as database_rows
from tests.platform.test_server import API, assert_error, call

pytestmark = pytest.mark.anyio

C = RecordChange
FIELDS = [{"key": "name"}, {"key": "email"}]


@pytest.fixture(params=[pytest.param("inprocess"), pytest.param("http")])
async def api(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Api]:
    """The Api in-process, or over HTTP to a real server on the same platform (as its admin)."""
    if request.param == "inprocess":
        yield server.platform.api
    else:
        async with Client(server.url, token=server.admin_token) as client:
            yield client


def actor(api: Api) -> str | None:
    return "admin" if isinstance(api, Client) else None


async def contacts(api: Api, names: list[str]) -> tuple[Workbook, list[Record]]:
    """A workbook with a Contacts sheet holding one record per name."""
    workbook = await api.workbooks.create(name="CRM", sheets=[{"name": "Contacts", "slug": "contacts",
                                                               "fields": FIELDS}])
    rows = await api.records.insert(workbook.sheets[0].id, [{"name": n} for n in names])
    return workbook, rows


def test_each_call_is_written_once_for_both_transports() -> None:
    """STYLE rule 15: the transports implement the validated calls; neither redefines a public signature."""
    for name in ("create", "list", "get", "records", "restore", "delete"):
        assert getattr(SnapshotService, name) is getattr(ClientSnapshots, name) is getattr(SnapshotsApi, name)


async def test_create_list_get_and_snapshot_created(api: Api, platform: Platform) -> None:
    workbook, _ = await contacts(api, ["Ada", "Alan"])
    sheet = workbook.sheets[0]
    head = await platform.store.head()
    snapshot = await api.snapshots.create(sheet.id, label="Before import")
    assert snapshot.id.startswith("ss_")
    assert (snapshot.sheet_id, snapshot.workbook_id, snapshot.label, snapshot.summary.records, snapshot.created_by) == (
        sheet.id, workbook.id, "Before import", 2, actor(api))
    assert snapshot.created_at == platform.clock.now()
    unlabelled = await api.snapshots.create(sheet.id)
    assert unlabelled.label is None
    assert await api.snapshots.list(sheet_id=sheet.id) == [snapshot, unlabelled], "oldest first"
    assert await api.snapshots.get(snapshot.id) == snapshot
    other = await api.workbooks.create(name="Other", sheets=[{"name": "Empty"}])
    assert await api.snapshots.list(sheet_id=other.sheets[0].id) == []

    events = [e for e in await api.events.list(after=head) if e.topic.startswith("snapshot:")]
    assert [e.topic for e in events] == ["snapshot:created", "snapshot:created"]
    first = events[0]
    assert (first.context.snapshot_id, first.context.sheet_id, first.context.sheet_slug, first.context.workbook_id,
            first.context.actor_id) == (snapshot.id, sheet.id, "contacts", workbook.id, actor(api))
    assert first.payload["id"] == snapshot.id and first.payload["summary"] == {"records": 2}


async def test_records_are_marked_with_what_changed_and_restore_puts_them_back(
    api: Api, platform: Platform, clock: ManualClock
) -> None:
    workbook, (ada, alan, grace) = await contacts(api, ["Ada", "Alan", "Grace"])
    sheet = workbook.sheets[0]
    before = (await api.records.get(sheet.id)).items
    snapshot = await api.snapshots.create(sheet.id, label="Before tidy")

    clock.advance(60)
    await api.records.update(sheet.id, [{"id": ada.id, "values": {"name": "Ada L."}},
                                        {"id": grace.id, "values": {"email": "grace@example.com"}}])
    await api.records.delete(sheet.id, [alan.id])
    (edsger,) = await api.records.insert(sheet.id, [{"name": "Edsger"}])
    grace_now = {"name": "Grace", "email": "grace@example.com"}

    page = await api.snapshots.records(snapshot.id)
    assert page.changes.model_dump() == {"unchanged": 0, "changed": 2, "removed": 1, "added": 1}
    assert (page.total, page.limit, page.offset) == (4, 100, 0)
    assert [(r.id, r.change, r.values, r.current) for r in page.items] == [
        (ada.id, C.CHANGED, {"name": "Ada"}, {"name": "Ada L."}),
        (alan.id, C.REMOVED, {"name": "Alan"}, None),
        (grace.id, C.CHANGED, {"name": "Grace"}, grace_now),
        (edsger.id, C.ADDED, {"name": "Edsger"}, {"name": "Edsger"}),
    ]
    second = await api.snapshots.records(snapshot.id, limit=2, offset=2)
    assert [r.id for r in second.items] == [grace.id, edsger.id] and second.total == 4
    assert (await api.snapshots.get(snapshot.id)).summary.records == 3, "the copy did not move with the sheet"

    head = await platform.store.head()
    clock.advance(60)
    commit = await api.snapshots.restore(snapshot.id)
    assert (commit.sheet_id, commit.workbook_id, commit.inserted, commit.updated, commit.deleted,
            commit.created_by) == (sheet.id, workbook.id, 1, 2, 1, actor(api))
    after = (await api.records.get(sheet.id)).items
    assert [(r.id, r.values, r.created_at) for r in after] == [(r.id, r.values, r.created_at) for r in before], (
        "the same ids, values (a key added since is gone) and order as when the snapshot was taken")
    assert [r.updated_at == platform.clock.now() for r in after] == [True, True, True], "brought back or changed"

    events = await api.events.list(after=head)
    assert [e.topic for e in events] == ["commit:created", "snapshot:restored"]
    assert {(e.context.commit_id, e.context.snapshot_id, e.context.sheet_id) for e in events} == {
        (commit.id, snapshot.id, sheet.id)}
    assert (events[0].payload["inserted"], events[0].payload["updated"], events[0].payload["deleted"]) == (1, 2, 1)
    assert events[1].payload["commit"]["id"] == commit.id

    restored = await api.snapshots.records(snapshot.id)
    assert restored.changes.model_dump() == {"unchanged": 3, "changed": 0, "removed": 0, "added": 0}
    clock.advance(60)
    again = await api.snapshots.restore(snapshot.id)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0), "a snapshot stays after it is restored"
    assert [r.updated_at for r in (await api.records.get(sheet.id)).items] == [r.updated_at for r in after], (
        "records the restore leaves as they are keep their updated time")


async def test_delete_leaves_the_sheet_and_deleting_the_workbook_takes_its_snapshots(
    api: Api, platform: Platform
) -> None:
    workbook, rows = await contacts(api, ["Ada"])
    sheet = workbook.sheets[0]
    kept, dropped = await api.snapshots.create(sheet.id), await api.snapshots.create(sheet.id, label="Dropped")
    head = await platform.store.head()
    await api.snapshots.delete(dropped.id)
    (event,) = await api.events.list(after=head)
    assert (event.topic, event.context.snapshot_id, event.payload["label"]) == ("snapshot:deleted", dropped.id,
                                                                                "Dropped")
    for gone in (api.snapshots.get(dropped.id), api.snapshots.records(dropped.id), api.snapshots.restore(dropped.id),
                 api.snapshots.delete(dropped.id)):
        with pytest.raises(NotFound, match=f"Snapshot {dropped.id} not found"):
            await gone
    assert await api.snapshots.list(sheet_id=sheet.id) == [kept]
    assert [r.id for r in (await api.records.get(sheet.id)).items] == [rows[0].id]
    assert [r[0] for r in (await database_rows(platform))["snapshot_records"]] == [kept.id]

    await api.workbooks.delete(workbook.id)
    with pytest.raises(NotFound):
        await api.snapshots.get(kept.id)
    assert (await database_rows(platform))["snapshot_records"] == [], "no copy outlives its sheet"


async def test_a_snapshot_of_an_empty_sheet_restores_it_to_empty(api: Api) -> None:
    workbook, _ = await contacts(api, [])
    sheet = workbook.sheets[0]
    snapshot = await api.snapshots.create(sheet.id, label="Empty")
    assert snapshot.summary.records == 0
    await api.records.insert(sheet.id, [{"name": "Ada"}, {"name": "Alan"}])
    page = await api.snapshots.records(snapshot.id)
    assert [r.change for r in page.items] == [C.ADDED, C.ADDED] and page.changes.added == 2
    commit = await api.snapshots.restore(snapshot.id)
    assert (commit.inserted, commit.updated, commit.deleted) == (0, 0, 2)
    assert (await api.records.get(sheet.id)).total == 0


async def test_a_snapshot_survives_a_restart(db_url: str) -> None:
    clock = ManualClock()
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        workbook, rows = await contacts(platform.api, ["Ada", "Alan"])
        snapshot = await platform.api.snapshots.create(workbook.sheets[0].id, label="Nightly")
        await platform.api.records.delete(workbook.sheets[0].id, [rows[0].id])
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        assert await platform.api.snapshots.get(snapshot.id) == snapshot
        page = await platform.api.snapshots.records(snapshot.id)
        assert [(r.values["name"], r.change) for r in page.items] == [("Ada", C.REMOVED), ("Alan", C.UNCHANGED)]
        commit = await platform.api.snapshots.restore(snapshot.id)
        assert commit.inserted == 1
        assert [r.id for r in (await platform.api.records.get(workbook.sheets[0].id)).items] == [r.id for r in rows]


async def test_a_listener_hears_snapshot_created_and_a_restore_as_a_commit(platform: Platform) -> None:
    workbook, _ = await contacts(platform.api, ["Ada"])
    sheet = workbook.sheets[0]
    heard: list[Event] = []
    done = anyio.Event()
    listener = Listener("auditor")

    @listener.on("snapshot:created", {"sheet": "contacts"})
    async def created(event: Event) -> None:
        heard.append(event)

    @listener.on("commit:created", {"sheet": "contacts"})
    async def committed(event: Event) -> None:
        heard.append(event)
        if event.context.snapshot_id is not None:
            done.set()

    async with platform.running(listener):
        snapshot = await platform.api.snapshots.create(sheet.id, label="Before")
        await platform.api.records.insert(sheet.id, [{"name": "Alan"}])
        commit = await platform.api.snapshots.restore(snapshot.id)
        with anyio.fail_after(10):
            await done.wait()
    assert [(e.topic, e.context.snapshot_id) for e in heard] == [
        ("snapshot:created", snapshot.id), ("commit:created", None), ("commit:created", snapshot.id)]
    assert heard[-1].context.commit_id == commit.id and heard[-1].payload["deleted"] == 1


async def test_an_outcome_points_at_a_snapshot_by_its_id_alone(api: Api) -> None:
    workbook, _ = await contacts(api, ["Ada"])
    snapshot = await api.snapshots.create(workbook.sheets[0].id)
    job = await api.jobs.ack((await api.jobs.create(type="sheet", operation="tidy",
                                                    source=workbook.sheets[0].id)).id)
    job = await api.jobs.complete(job.id, outcome={"message": "Tidied.", "acknowledge": True,
                                                   "next": {"type": "snapshot", "snapshotId": snapshot.id}})
    assert job.outcome is not None and job.outcome.next is not None
    assert job.outcome.next.model_dump(by_alias=True) == {"type": "snapshot", "snapshotId": snapshot.id,
                                                           "sheetId": None, "label": None}


Call = Callable[[Api, str, str], Awaitable[Any]]
BAD_INPUT: list[Any] = [
    pytest.param("sheet_id", lambda api, sh, ss: api.snapshots.create(""), id="empty-sheet-id"),
    pytest.param("label", lambda api, sh, ss: api.snapshots.create(sh, label=""), id="empty-label"),
    pytest.param("label", lambda api, sh, ss: api.snapshots.create(sh, label="x" * 501), id="long-label"),
    pytest.param("sheet_id", lambda api, sh, ss: api.snapshots.list(sheet_id=""), id="list-empty-sheet-id"),
    pytest.param("limit", lambda api, sh, ss: api.snapshots.records(ss, limit=0), id="limit-0"),
    pytest.param("limit", lambda api, sh, ss: api.snapshots.records(ss, limit=1001), id="limit-1001"),
    pytest.param("offset", lambda api, sh, ss: api.snapshots.records(ss, offset=-1), id="negative-offset"),
]


@pytest.mark.parametrize(("field", "bad"), BAD_INPUT)
async def test_bad_input_is_invalid_naming_the_field(api: Api, platform: Platform, field: str, bad: Call) -> None:
    workbook, _ = await contacts(api, ["Ada"])
    snapshot = await api.snapshots.create(workbook.sheets[0].id)
    head, before = await platform.store.head(), await database_rows(platform)
    with pytest.raises(Invalid) as raised:
        await bad(api, workbook.sheets[0].id, snapshot.id)
    assert field in [d["field"] for d in raised.value.details]
    assert field in raised.value.message
    assert await platform.store.head() == head and await database_rows(platform) == before, "nothing written"


async def test_unknown_ids_are_not_found(api: Api, platform: Platform) -> None:
    with pytest.raises(NotFound, match="Sheet sh_nope not found"):
        await api.snapshots.create("sh_nope")
    with pytest.raises(NotFound, match="Sheet sh_nope not found"):
        await api.snapshots.list(sheet_id="sh_nope")
    workbook, _ = await contacts(api, ["Ada"])
    for wrong in ("ss_nope", workbook.id, workbook.sheets[0].id):  # another kind's id is not a snapshot's
        with pytest.raises(NotFound, match=f"Snapshot {wrong} not found"):
            await api.snapshots.get(wrong)
    with pytest.raises(NotFound, match=f"Sheet {workbook.id} not found"):  # a workbook is not a sheet
        await api.snapshots.create(workbook.id)
    assert await api.snapshots.list(sheet_id=workbook.sheets[0].id) == []


REST_BAD: list[Any] = [
    pytest.param("POST", "/snapshots", {}, "sheetId", id="no-sheet-id"),
    pytest.param("POST", "/snapshots", {"sheetId": 5}, "sheetId", id="sheet-id-a-number"),
    pytest.param("POST", "/snapshots", {"sheetId": "{sheet}", "label": ""}, "label", id="empty-label"),
    pytest.param("POST", "/snapshots", {"sheetId": "{sheet}", "colour": "red"}, "colour", id="unknown-field"),
    pytest.param("GET", "/snapshots", None, "sheetId", id="list-without-sheet-id"),
    pytest.param("GET", "/snapshots?sheetId={sheet}&colour=red", None, "colour", id="unknown-query"),
    pytest.param("GET", "/snapshots/{snapshot}/records?limit=0", None, "limit", id="limit-0"),
    pytest.param("GET", "/snapshots/{snapshot}/records?offset=x", None, "offset", id="offset-not-a-number"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), REST_BAD)
async def test_rest_bad_input_is_422_naming_the_field(server: Server, method: str, path: str, body: Any,
                                                      field: str) -> None:
    workbook, _ = await contacts(server.platform.api, ["Ada"])
    snapshot = await server.platform.api.snapshots.create(workbook.sheets[0].id)
    ids = {"sheet": workbook.sheets[0].id, "snapshot": snapshot.id}
    if isinstance(body, dict):
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    before = await database_rows(server.platform)
    status, answer = await call(server, method, API + path.format(**ids), server.admin_token,
                                **({"json": body} if body is not None else {}))
    message = assert_error(status, answer, 422, "invalid")
    assert field in [d["field"] for d in answer["error"]["details"]] and field in message
    assert await database_rows(server.platform) == before


#                    admin member agent none
MATRIX: dict[str, tuple[int, int, int, int]] = {
    "create":           (201, 403, 201, 401),
    "list":             (200, 200, 200, 401),
    "get":              (200, 200, 200, 401),
    "records":          (200, 200, 200, 401),
    "restore":          (200, 403, 200, 401),
    "delete":           (204, 403, 204, 401),
}  # fmt: skip
ROLES = ("admin", "member", "agent", "none")


async def test_members_read_snapshots_and_only_operators_change_them(server: Server) -> None:
    tokens: dict[str, str | None] = {"admin": server.admin_token, "member": await server.token("alice"),
                                     "agent": await server.token("worker", "agent"), "none": None}
    api = server.platform.api.as_actor("admin")
    got: dict[str, tuple[int, ...]] = {}
    for op in MATRIX:
        statuses = []
        for role in ROLES:
            workbook, rows = await contacts(api, ["Ada"])
            sheet = workbook.sheets[0].id
            snapshot = await api.snapshots.create(sheet)
            await api.records.delete(sheet, [rows[0].id])  # so that a restore has something to do
            method, path, body = {
                "create": ("POST", "/snapshots", {"sheetId": sheet, "label": "Mine"}),
                "list": ("GET", f"/snapshots?sheetId={sheet}", None),
                "get": ("GET", f"/snapshots/{snapshot.id}", None),
                "records": ("GET", f"/snapshots/{snapshot.id}/records", None),
                "restore": ("POST", f"/snapshots/{snapshot.id}/restore", None),
                "delete": ("DELETE", f"/snapshots/{snapshot.id}", None),
            }[op]
            head, before = await server.platform.store.head(), await database_rows(server.platform)
            status, answer = await call(server, method, API + path, tokens[role],
                                        **({"json": body} if body is not None else {}))
            statuses.append(status)
            if status >= 400:
                assert_error(status, answer, status, {401: "unauthorized", 403: "forbidden"}[status])
                assert await server.platform.store.head() == head, f"{role} {op}: refused, so nothing happened"
                assert await database_rows(server.platform) == before
            elif op == "restore":
                assert answer["inserted"] == 1
                assert [r.id for r in (await api.records.get(sheet)).items] == [rows[0].id]
        got[op] = tuple(statuses)
    assert got == MATRIX
