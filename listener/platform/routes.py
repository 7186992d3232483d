"""The REST API under /api/v1: one table of routes, each with its body, query and response models.

The table drives both the aiohttp router and the OpenAPI document, so the two
cannot drift apart. Handlers get a `Call` (the user, the Api acting as that
user, the parsed body and query) and return a model, a `Reply`, or None (204).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args, get_origin

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic_core import from_json

from listener.errors import Forbidden, Invalid, NotFound
from listener.models import (
    MAX_INT64,
    Commit,
    DedupeResult,
    Document,
    DocumentCreate,
    DocumentUpdate,
    Event,
    File,
    Job,
    JobAck,
    JobAttach,
    JobCancel,
    JobCheckpoint,
    JobComplete,
    JobCreate,
    JobData,
    JobErrors,
    JobFail,
    JobHeartbeat,
    JobItemError,
    JobLimits,
    JobListQuery,
    JobPriority,
    JobSettings,
    JobSplit,
    JobUpdate,
    Model,
    Page,
    Record,
    Sheet,
    Space,
    SpaceCreate,
    Workbook,
    WorkbookCreate,
    parse,
    parse_strict_json,
)
from listener.platform.auth import Role, User, UserCreate, Users
from listener.platform.files import receive_upload, send_file
from listener.platform.jobs import unknown_predecessor
from listener.snapshots import Snapshot, SnapshotCreate, SnapshotQuery, SnapshotRecords, SnapshotRecordsQuery

if TYPE_CHECKING:
    from listener.platform import Platform, PlatformApi

__all__ = ["ROUTES", "Call", "Reply", "Route"]

T = TypeVar("T", bound=BaseModel)
ALL = frozenset(Role)
OPERATORS = frozenset({Role.ADMIN, Role.AGENT})


class Items(Model, Generic[T]):
    """A list that is not paged."""

    items: list[T]


class Health(Model):
    status: str
    version: str


class Head(Model):
    seq: int


class Cursor(Model):
    agent: str
    seq: int | None


class TriggerAction(Model):
    source_id: str = Field(min_length=1)
    operation: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class RecordValues(Model):
    id: str
    values: dict[str, Any]


class RecordsInsert(Model):
    records: list[dict[str, Any]]


class RecordsUpdate(Model):
    records: list[RecordValues]


class RecordsDelete(Model):
    ids: list[str] = Field(min_length=1)


class PageQuery(Model):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT64)


class EventsQuery(Model):
    after: int = Field(0, ge=0, le=MAX_INT64)
    limit: int = Field(100, ge=1, le=1000)
    job_id: str | None = None


class WorkbookQuery(Model):
    space_id: str | None = None


class SheetQuery(Model):
    workbook_id: str


class DocumentQuery(Model):
    space_id: str | None = None


class NewUser(Model):
    """A user just created, with its token: shown this once, never again."""

    user: User
    token: str


@dataclass(frozen=True, slots=True)
class Reply:
    body: BaseModel | None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    """What a route handler gets."""

    request: web.Request
    user: User
    platform: Platform
    api: PlatformApi
    users: Users
    body: Any = None
    query: Any = None
    params: Mapping[str, str] | None = None
    """The path's parameters when the call did not come as a request of its own (the worker channel)."""
    idempotency_key: str | None = None
    """The Idempotency-Key a create is made with: the request's header, or over the worker channel one made from
    the call's id, so that a create sent again after a dropped socket (or to another replica) is the same create."""

    def param(self, name: str) -> str:
        return (self.request.match_info if self.params is None else self.params)[name]

    @property
    def is_member(self) -> bool:
        return self.user.role is Role.MEMBER

    async def job(self, job_id: str) -> Job:
        """The job, if this user may see it: another member's job is NotFound, as if it did not exist."""
        job = await self.api.jobs.get(job_id)
        if self.is_member and job.created_by != self.user.name:
            raise NotFound(f"Job {job_id} not found.", details={"jobId": job_id})
        return job

    async def file(self, file_id: str) -> File:
        """The file, if this user may see it: another member's file is NotFound, as if it did not exist."""
        file = await self.api.files.get(file_id)
        if self.is_member and file.created_by != self.user.name and self.user.name not in file.readers:
            raise NotFound(f"File {file_id} not found.", details={"id": file_id})
        return file


Handler = Callable[[Call], Awaitable[BaseModel | Reply | web.StreamResponse | None]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    roles: frozenset[Role] = ALL
    public: bool = False
    prefixed: bool = True  # under /api/v1; /metrics stands where Prometheus looks for it
    # A multipart/form-data body the handler reads as it streams in (body is then None); documented from this model.
    form: type[BaseModel] | None = None
    # Other success statuses it answers with the same response, and what each means (for the OpenAPI document).
    also: tuple[tuple[int, str], ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def downloadable(self) -> bool:
        """A GET that answers a file, not JSON: a signed link may stand in for the token."""
        return self.method == "GET" and isinstance(self.response, str) and self.response != "text/plain"

    @property
    def pattern(self) -> re.Pattern[str]:
        """The paths (under /api/v1) this route answers."""
        return re.compile("^/api/v1" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(self.path)) + "$")


ROUTES: list[Route] = []


def route(method: str, path: str, *, tag: str, body: type[BaseModel] | None = None,
          query: type[BaseModel] | None = None, response: Any = None, status: int = 200,
          roles: frozenset[Role] = ALL, public: bool = False,
          form: type[BaseModel] | None = None, also: tuple[tuple[int, str], ...] = ()) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        summary = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
        ROUTES.append(Route(method, path, handler, summary, tag, body, query, response, status, roles, public,
                            form=form, also=also))
        return handler

    return register


# -- parsing ------------------------------------------------------------------


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(get_origin(a) is list for a in get_args(annotation))


def parse_query(model: type[T], query: Mapping[str, str], getall: Callable[[str], list[str]]) -> T:
    """Query string to model: camelCase keys, lists as repeated keys or commas (`status=failed,ready`).

    An empty part is a value like any other, validated as one: `status=` is refused, not read as no filter.
    """
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    unknown = [k for k in query if k not in fields]
    if unknown:
        raise Invalid(f"Unknown query parameter {unknown[0]!r}; use one of: {', '.join(fields)}.",
                      details=[{"field": k, "message": "unknown query parameter"} for k in unknown])
    data: dict[str, Any] = {}
    for key, info in fields.items():
        if key not in query:
            continue
        if _is_list(info.annotation):
            data[key] = [part for value in getall(key) for part in value.split(",")]
        else:
            data[key] = query[key]
    return parse(model, data, what="query")


async def parse_body(request: web.Request, model: type[T]) -> T:
    return parse_raw_body(await request.read(), model)


def parse_raw_body(raw: bytes, model: type[T]) -> T:
    """A request body as `model`, validated as the OpenAPI document says (strict JSON); Invalid names the field."""
    if not raw:
        raise Invalid("The request needs a JSON body.", details=[{"field": "(body)", "message": "missing"}])
    # pydantic's JSON reader takes NaN and Infinity, which are not JSON: a body that may hold them is
    # checked by `parse_json` first; any other is read once, and checked only if refused, so that a
    # malformed body is called that rather than invalid.
    if b"NaN" in raw or b"Infinity" in raw:
        _well_formed(raw)
        return parse_strict_json(model, raw, what="body")
    try:
        return parse_strict_json(model, raw, what="body")
    except Invalid:
        _well_formed(raw)
        raise


def _well_formed(raw: bytes) -> None:
    try:
        parse_json(raw)
    except ValueError as exc:
        raise Invalid(f"The request body is not valid JSON: {exc}.",
                      details=[{"field": "(body)", "message": "malformed JSON"}]) from None


def parse_json(raw: bytes | str) -> Any:
    """Strict JSON, any problem a ValueError: no NaN or Infinity, no lone surrogates, nesting under 200 levels.

    Not `json.loads`, which takes NaN (not JSON) and lone surrogates ("\\ud800": a 500 when the
    answer is encoded), and raises RecursionError on deep nesting and a plain ValueError, not
    JSONDecodeError, on numbers of more than 4300 digits (both 500s too).
    """
    return from_json(raw, allow_inf_nan=False)


def _given(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.model_fields_set}


# -- health, spec, users --------------------------------------------------------


@route("GET", "/health", tag="system", response=Health, public=True)
async def health(call: Call) -> Health:
    """Whether the server is up (the one endpoint that needs no token)."""
    from listener import __version__

    return Health(status="ok", version=__version__)


@route("GET", "/users/me", tag="users", response=User)
async def me(call: Call) -> User:
    """The user the bearer token belongs to."""
    return call.user


@route("POST", "/users", tag="users", body=UserCreate, response=NewUser, status=201, roles=frozenset({Role.ADMIN}))
async def create_user(call: Call) -> Reply:
    """Create a user and return its token, shown this once."""
    user, token = await call.users.create(call.body.name, call.body.role)
    return Reply(NewUser(user=user, token=token), status=201)


# -- jobs -----------------------------------------------------------------------


class JobCreated(Job):
    """A job as a create answers it: with a dedupe key, `dedupe` says whether the create made it (`created`) or
    found it waiting with the key (`deduplicated`, `debounced`: listener/platform/dedupe.py); else absent."""

    dedupe_result: DedupeResult | None = Field(None, alias="dedupe")  # `dedupe` is Job's property of the same


@route("POST", "/jobs", tag="jobs", body=JobCreate, response=JobCreated, status=202,
       also=((200, "A job waiting with the dedupeKey, deduplicated or debounced (its `dedupe` and the Listener-Dedupe "
                   "header say which), instead of a new one."),))
async def create_job(call: Call) -> Reply:
    """Create a job; answers 202 Accepted with the job and its Location (Idempotency-Key makes it safe to retry)."""
    key = call.idempotency_key if call.params is not None else call.request.headers.get("Idempotency-Key")
    if call.body.source and call.body.source.startswith("fl_"):
        await call.file(call.body.source)  # another member's file is not there to work on (a file:extract)
    if call.is_member:
        for predecessor in call.body.predecessor_ids:
            try:
                await call.job(predecessor)
            except NotFound:  # another member's job, named as if it did not exist: no answer tells the two apart
                raise unknown_predecessor(predecessor) from None
    # A member's dedupe keys are its own: another's job with the same key is not found, changed or shown.
    job = await call.api.jobs.create_from(call.body, idempotency_key=key,
                                          dedupe_scope=call.user.name if call.is_member else None)
    location = {"Location": f"/api/v1/jobs/{job.id}"}
    if job.dedupe is None:
        return Reply(job, status=202, headers=location)
    answer = JobCreated.model_construct(job.model_fields_set | {"dedupe_result"}, **job.__dict__,
                                        dedupe_result=job.dedupe)
    return Reply(answer, status=202 if job.dedupe == "created" else 200,
                 headers={**location, "Listener-Dedupe": job.dedupe})


@route("GET", "/jobs", tag="jobs", query=JobListQuery, response=Page[Job])
async def list_jobs(call: Call) -> Page[Job]:
    """Jobs, newest first or sorted, filtered by status, type, operation, creator, id, text and metadata (members
    see only their own)."""
    q: JobListQuery = call.query
    if call.is_member:
        q = q.model_copy(update={"created_by": call.user.name})
    return await call.api.jobs.list_from(q)


@route("GET", "/jobs/{jobId}", tag="jobs", response=Job)
async def get_job(call: Call) -> Job:
    """One job: status, progress, info, outcome, error and timestamps."""
    return await call.job(call.param("jobId"))


@route("DELETE", "/jobs/{jobId}", tag="jobs", status=204)
async def delete_job(call: Call) -> None:
    """Delete a job that is not executing."""
    await call.job(call.param("jobId"))
    await call.api.jobs.delete(call.param("jobId"))


@route("POST", "/jobs/{jobId}/execute", tag="jobs", response=Job)
async def execute_job(call: Call) -> Job:
    """Start a manual job."""
    return await call.api.jobs.execute((await call.job(call.param("jobId"))).id)


@route("POST", "/jobs/{jobId}/priority", tag="jobs", body=JobPriority, response=Job, roles=OPERATORS)
async def set_job_priority(call: Call) -> Job:
    """Give a job that has not started (created, planning, scheduled or ready) another priority; 409 once started."""
    return await call.api.jobs.set_priority((await call.job(call.param("jobId"))).id, call.body.priority)


@route("POST", "/jobs/{jobId}/ack", tag="jobs", body=JobAck, response=Job, roles=OPERATORS)
async def ack_job(call: Call) -> Job:
    """Claim a ready job (ready → executing); a second claim gets 409."""
    return await call.api.jobs.ack(call.param("jobId"), **_given(call.body))


@route("PATCH", "/jobs/{jobId}", tag="jobs", body=JobUpdate, response=Job, roles=OPERATORS)
async def update_job(call: Call) -> Job:
    """Report progress on an executing job."""
    return await call.api.jobs.update(call.param("jobId"), **_given(call.body))


@route("POST", "/jobs/{jobId}/complete", tag="jobs", body=JobComplete, response=Job, roles=OPERATORS)
async def complete_job(call: Call) -> Job:
    """Finish an executing job with an outcome."""
    return await call.api.jobs.complete(call.param("jobId"), **_given(call.body))


@route("POST", "/jobs/{jobId}/fail", tag="jobs", body=JobFail, response=Job, roles=OPERATORS)
async def fail_job(call: Call) -> Job:
    """Fail an executing job."""
    return await call.api.jobs.fail(call.param("jobId"), **_given(call.body))


@route("POST", "/jobs/{jobId}/heartbeat", tag="jobs", body=JobHeartbeat, response=Job, roles=OPERATORS)
async def heartbeat_job(call: Call) -> Job:
    """Renew the lease of an executing job: its worker is alive. Conflict once the attempt is over."""
    return await call.api.jobs.heartbeat(call.param("jobId"), **_given(call.body))


@route("POST", "/jobs/{jobId}/checkpoint", tag="jobs", body=JobCheckpoint, response=Job, roles=OPERATORS)
async def checkpoint_job(call: Call) -> Job:
    """Save a small JSON state of an executing job that a retried attempt resumes from."""
    return await call.api.jobs.checkpoint(call.param("jobId"), call.body.state, attempt=call.body.attempt)


@route("POST", "/jobs/{jobId}/split", tag="jobs", body=JobSplit, response=Job, roles=OPERATORS)
async def split_job(call: Call) -> Job:
    """Split an executing job into parts (child jobs); job:parts-completed fires when they have all finished."""
    return await call.api.jobs.split(call.param("jobId"), **_given(call.body))


class JobSettingsList(Model):
    items: list[JobSettings]


@route("PUT", "/job-settings/{job}", tag="jobs", body=JobLimits, response=JobSettings,
       roles=frozenset({Role.ADMIN}))
async def configure_jobs(call: Call) -> JobSettings:
    """Set the limits (max running at once, starts per second) and default timeout of one type:operation."""
    return await call.api.jobs.configure(call.param("job"), **_given(call.body))


@route("GET", "/job-settings", tag="jobs", response=JobSettingsList)
async def job_settings(call: Call) -> JobSettingsList:
    """The limits and default timeouts set per type:operation."""
    return JobSettingsList(items=list(await call.api.jobs.settings()))


@route("POST", "/jobs/{jobId}/files", tag="jobs", body=JobAttach, response=Job, roles=OPERATORS)
async def attach_job_file(call: Call) -> Job:
    """Attach an uploaded file to a job as its input, output or error report."""
    return await call.api.jobs.attach_file(call.param("jobId"), call.body.file_id, role=call.body.role)


class RowCount(Model):
    total: int


@route("POST", "/jobs/{jobId}/data", tag="jobs", body=JobData, response=RowCount, roles=OPERATORS)
async def write_job_data(call: Call) -> RowCount:
    """Append result rows to a job's data, downloadable as CSV until it expires."""
    return RowCount(total=await call.api.jobs.write_data(call.param("jobId"), call.body.rows))


async def _csv(call: Call, name: str, chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8", "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
    await response.prepare(call.request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away mid-download: nothing to answer
    return response


@route("GET", "/jobs/{jobId}/data.csv", tag="jobs", response="text/csv")
async def job_data_csv(call: Call) -> web.StreamResponse:
    """A job's result rows as CSV (404 "no job data" if it wrote none, 410 once they have expired)."""
    job = await call.job(call.param("jobId"))
    return await _csv(call, f"{job.id}-data.csv", await call.api.jobs.data_csv(job.id))


@route("GET", "/jobs/{jobId}/errors.csv", tag="jobs", response="text/csv")
async def job_errors_csv(call: Call) -> web.StreamResponse:
    """A job's error log as CSV: item, message, time."""
    job = await call.job(call.param("jobId"))
    return await _csv(call, f"{job.id}-errors.csv", await call.api.jobs.errors_csv(job.id))


class LinkRequest(Model):
    path: str = Field(min_length=1, max_length=2000)


class Link(Model):
    url: str
    expires_at: datetime


@route("POST", "/links", tag="system", body=LinkRequest, response=Link)
async def sign_link(call: Call) -> Link:
    """A short-lived link to download a file or CSV without the bearer token (for a web page's download button)."""
    path = call.body.path
    if not any(r.downloadable and r.pattern.match(path) for r in ROUTES):
        raise Invalid(f"path: {path!r} is not a download (file content, data.csv, errors.csv) under /api/v1.",
                      details=[{"field": "path", "message": "not a download"}])
    url, expires = await call.users.sign(call.user, path)
    return Link(url=url, expires_at=expires)


class ErrorCount(Model):
    total: int


@route("POST", "/jobs/{jobId}/errors", tag="jobs", body=JobErrors, response=ErrorCount, roles=OPERATORS)
async def log_job_errors(call: Call) -> ErrorCount:
    """Append entries (item, message) to a job's error log; it stays with the job however it ends."""
    return ErrorCount(total=await call.api.jobs.log_errors(call.param("jobId"), call.body.errors))


@route("GET", "/jobs/{jobId}/errors", tag="jobs", query=PageQuery, response=Page[JobItemError])
async def job_errors(call: Call) -> Page[JobItemError]:
    """A page of a job's error log, oldest first."""
    job = await call.job(call.param("jobId"))
    return await call.api.jobs.errors(job.id, limit=call.query.limit, offset=call.query.offset)


@route("POST", "/jobs/{jobId}/retry", tag="jobs", response=Job)
async def retry_job(call: Call) -> Job:
    """Run a failed job again (the outcome's retry button)."""
    return await call.api.jobs.retry((await call.job(call.param("jobId"))).id)


@route("POST", "/jobs/{jobId}/retry-failed-items", tag="jobs", response=Job, status=202)
async def retry_failed_items(call: Call) -> Reply:
    """Run again only the items an ended job's error log names, as a new job (its `retryOf`); 202 with it."""
    job = await call.api.jobs.retry_failed_items((await call.job(call.param("jobId"))).id)
    return Reply(job, status=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@route("POST", "/jobs/{jobId}/cancel", tag="jobs", body=JobCancel, response=Job)
async def cancel_job(call: Call) -> Job:
    """Cancel a job that has not ended."""
    job = await call.job(call.param("jobId"))
    return await call.api.jobs.cancel(job.id, **_given(call.body))


@route("POST", "/jobs/{jobId}/outcome/acknowledge", tag="jobs", response=Job)
async def acknowledge_outcome(call: Call) -> Job:
    """Record that the person saw the outcome of a finished job."""
    return await call.api.jobs.acknowledge_outcome((await call.job(call.param("jobId"))).id)


# -- spaces, workbooks, sheets, records, actions ----------------------------------


@route("POST", "/spaces", tag="spaces", body=SpaceCreate, response=Space, status=201)
async def create_space(call: Call) -> Reply:
    """Create a space."""
    return Reply(await call.api.spaces.create(**_given(call.body)), status=201)


@route("GET", "/spaces", tag="spaces", response=Items[Space])
async def list_spaces(call: Call) -> Items[Space]:
    """Every space."""
    return Items[Space](items=await call.api.spaces.list())


@route("GET", "/spaces/{spaceId}", tag="spaces", response=Space)
async def get_space(call: Call) -> Space:
    """One space."""
    return await call.api.spaces.get(call.param("spaceId"))


@route("POST", "/workbooks", tag="workbooks", body=WorkbookCreate, response=Workbook, status=201)
async def create_workbook(call: Call) -> Reply:
    """Create a workbook with its sheets and actions."""
    body: WorkbookCreate = call.body
    workbook = await call.api.workbooks.create(
        name=body.name, space_id=body.space_id, labels=body.labels, metadata=body.metadata,
        sheets=[s.model_dump(exclude_none=True) for s in body.sheets], actions=body.actions)
    return Reply(workbook, status=201)


@route("GET", "/workbooks", tag="workbooks", query=WorkbookQuery, response=Items[Workbook])
async def list_workbooks(call: Call) -> Items[Workbook]:
    """Workbooks, optionally of one space."""
    return Items[Workbook](items=await call.api.workbooks.list(space_id=call.query.space_id))


@route("GET", "/workbooks/{workbookId}", tag="workbooks", response=Workbook)
async def get_workbook(call: Call) -> Workbook:
    """One workbook with its sheets."""
    return await call.api.workbooks.get(call.param("workbookId"))


@route("DELETE", "/workbooks/{workbookId}", tag="workbooks", status=204, roles=OPERATORS)
async def delete_workbook(call: Call) -> None:
    """Delete a workbook, its sheets and their records."""
    await call.api.workbooks.delete(call.param("workbookId"))


@route("GET", "/sheets", tag="sheets", query=SheetQuery, response=Items[Sheet])
async def list_sheets(call: Call) -> Items[Sheet]:
    """The sheets of a workbook."""
    return Items[Sheet](items=await call.api.sheets.list(workbook_id=call.query.workbook_id))


@route("GET", "/sheets/{sheetId}", tag="sheets", response=Sheet)
async def get_sheet(call: Call) -> Sheet:
    """One sheet."""
    return await call.api.sheets.get(call.param("sheetId"))


@route("GET", "/sheets/{sheetId}/records", tag="records", query=PageQuery, response=Page[Record])
async def get_records(call: Call) -> Page[Record]:
    """A page of a sheet's records."""
    return await call.api.records.get(call.param("sheetId"), limit=call.query.limit, offset=call.query.offset)


@route("POST", "/sheets/{sheetId}/records", tag="records", body=RecordsInsert, response=Items[Record], status=201)
async def insert_records(call: Call) -> Reply:
    """Insert records in one commit (commit:created)."""
    records = await call.api.records.insert(call.param("sheetId"), call.body.records)
    return Reply(Items[Record](items=records), status=201)


@route("PATCH", "/sheets/{sheetId}/records", tag="records", body=RecordsUpdate, response=Commit)
async def update_records(call: Call) -> Commit:
    """Update records' values in one commit."""
    return await call.api.records.update(call.param("sheetId"), [r.model_dump() for r in call.body.records])


@route("POST", "/sheets/{sheetId}/records/delete", tag="records", body=RecordsDelete, response=Commit)
async def delete_records(call: Call) -> Commit:
    """Delete records by id in one commit."""
    return await call.api.records.delete(call.param("sheetId"), call.body.ids)


# -- snapshots: members read them; restoring one rewrites a sheet, so it is the operators' --------------


@route("POST", "/snapshots", tag="snapshots", body=SnapshotCreate, response=Snapshot, status=201, roles=OPERATORS)
async def create_snapshot(call: Call) -> Reply:
    """Save a copy of a sheet's records as they are now (snapshot:created)."""
    snapshot = await call.api.snapshots.create(call.body.sheet_id, label=call.body.label)
    return Reply(snapshot, status=201, headers={"Location": f"/api/v1/snapshots/{snapshot.id}"})


@route("GET", "/snapshots", tag="snapshots", query=SnapshotQuery, response=Items[Snapshot])
async def list_snapshots(call: Call) -> Items[Snapshot]:
    """The snapshots of a sheet, oldest first."""
    return Items[Snapshot](items=await call.api.snapshots.list(sheet_id=call.query.sheet_id))


@route("GET", "/snapshots/{snapshotId}", tag="snapshots", response=Snapshot)
async def get_snapshot(call: Call) -> Snapshot:
    """One snapshot: its sheet, label, how many records it holds, who took it and when."""
    return await call.api.snapshots.get(call.param("snapshotId"))


@route("GET", "/snapshots/{snapshotId}/records", tag="snapshots", query=SnapshotRecordsQuery,
       response=SnapshotRecords)
async def snapshot_records(call: Call) -> SnapshotRecords:
    """A page of a snapshot's records marked unchanged, changed or removed against the sheet now, then those added."""
    q: SnapshotRecordsQuery = call.query
    return await call.api.snapshots.records(call.param("snapshotId"), limit=q.limit, offset=q.offset)


@route("POST", "/snapshots/{snapshotId}/restore", tag="snapshots", response=Commit, roles=OPERATORS)
async def restore_snapshot(call: Call) -> Commit:
    """Put a sheet's records back as the snapshot has them, in one commit (commit:created, snapshot:restored)."""
    return await call.api.snapshots.restore(call.param("snapshotId"))


@route("DELETE", "/snapshots/{snapshotId}", tag="snapshots", status=204, roles=OPERATORS)
async def delete_snapshot(call: Call) -> None:
    """Delete a snapshot (snapshot:deleted); its sheet is not touched."""
    await call.api.snapshots.delete(call.param("snapshotId"))


@route("POST", "/documents", tag="documents", body=DocumentCreate, response=Document, status=201, roles=OPERATORS)
async def create_document(call: Call) -> Reply:
    """Create a document: a title, a Markdown body (stored as given, never rendered) and actions."""
    body: DocumentCreate = call.body
    document = await call.api.documents.create(title=body.title, body=body.body, space_id=body.space_id,
                                               actions=body.actions)
    return Reply(document, status=201, headers={"Location": f"/api/v1/documents/{document.id}"})


@route("GET", "/documents", tag="documents", query=DocumentQuery, response=Items[Document])
async def list_documents(call: Call) -> Items[Document]:
    """Documents, optionally of one space."""
    return Items[Document](items=await call.api.documents.list(space_id=call.query.space_id))


@route("GET", "/documents/{documentId}", tag="documents", response=Document)
async def get_document(call: Call) -> Document:
    """One document."""
    return await call.api.documents.get(call.param("documentId"))


@route("PATCH", "/documents/{documentId}", tag="documents", body=DocumentUpdate, response=Document, roles=OPERATORS)
async def update_document(call: Call) -> Document:
    """Change a document's title, body or actions; only the fields given change."""
    return await call.api.documents.update(call.param("documentId"), **_given(call.body))


@route("DELETE", "/documents/{documentId}", tag="documents", status=204, roles=OPERATORS)
async def delete_document(call: Call) -> None:
    """Delete a document."""
    await call.api.documents.delete(call.param("documentId"))


@route("POST", "/actions/trigger", tag="actions", body=TriggerAction, response=Job, status=202)
async def trigger_action(call: Call) -> Reply:
    """Press an action's button: creates the job `domain:operation` on the object it is mounted on."""
    body: TriggerAction = call.body
    if body.source_id.startswith("fl_"):
        await call.file(body.source_id)  # another member's file is not there to act on
    job = await call.api.actions.trigger(body.source_id, body.operation, input=body.input)
    return Reply(job, status=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


# -- files --------------------------------------------------------------------------


class FileQuery(Model):
    space_id: str | None = None


class FileUpload(Model):
    """An upload as multipart/form-data: the fields that describe the file (an empty one is not given), then `file`."""

    space_id: str = Field("", description="the space the file belongs to")
    name: str = Field("", description="its name (default: the file part's filename)")
    mime_type: str = Field("", description="its media type (default: the file part's Content-Type, else guessed "
                                           "from the name)")
    actions: str = Field("", description="actions mounted on it, as a JSON array of actions")
    metadata: str = Field("", description="a JSON object")
    file: bytes = Field(description="the bytes, last: streamed to storage, never held whole")


@route("POST", "/files", tag="files", form=FileUpload, response=File, status=201)
async def upload_file(call: Call) -> Reply:
    """Upload a file as multipart/form-data (field `file`, last); 413 past the size limit, and nothing is kept."""
    file = await receive_upload(call.request, call.api.files)
    return Reply(file, status=201, headers={"Location": f"/api/v1/files/{file.id}"})


@route("GET", "/files", tag="files", query=FileQuery, response=Items[File])
async def list_files(call: Call) -> Items[File]:
    """Files in upload order, optionally of one space (members see only their own)."""
    files = await call.api.files.list(space_id=call.query.space_id)
    if call.is_member:
        files = [f for f in files if f.created_by == call.user.name]
    return Items[File](items=files)


@route("GET", "/files/{fileId}", tag="files", response=File)
async def get_file(call: Call) -> File:
    """A file's metadata: name, size, media type, sha256, space and actions."""
    return await call.file(call.param("fileId"))


@route("GET", "/files/{fileId}/content", tag="files", response="*/*")
async def download_file(call: Call) -> web.StreamResponse:
    """A file's bytes, streamed as an attachment (unsafe media types are sent as application/octet-stream)."""
    file = await call.file(call.param("fileId"))
    return await send_file(call.request, file, call.api.files.stream(file.id))


@route("DELETE", "/files/{fileId}", tag="files", status=204)
async def delete_file(call: Call) -> None:
    """Delete a file: its metadata (file:deleted), then its bytes."""
    await call.api.files.delete((await call.file(call.param("fileId"))).id)


# -- events and agents -----------------------------------------------------------


@route("GET", "/events", tag="events", query=EventsQuery, response=Items[Event])
async def list_events(call: Call) -> Items[Event]:
    """The event log in order, a page at a time (`after` a seq); members see only their own jobs' events."""
    q: EventsQuery = call.query
    events = await call.api.events.list(after=q.after, limit=q.limit, job_id=q.job_id)
    if not call.is_member:
        return Items[Event](items=events)
    # A member's page holds `limit` events it may see, however many it may not see lie between,
    # so that paging on with `after` = the last seq never stops early on an empty page.
    visible = [e for e in events if visible_to(call.user, e)]
    while len(visible) < q.limit and len(events) == q.limit:
        events = await call.api.events.list(after=events[-1].seq, limit=q.limit, job_id=q.job_id)
        visible += [e for e in events if visible_to(call.user, e)]
    return Items[Event](items=visible[: q.limit])


@route("GET", "/events/head", tag="events", response=Head)
async def events_head(call: Call) -> Head:
    """The seq of the newest event."""
    return Head(seq=await call.platform.store.head())


@route("GET", "/agents/{agent}/cursor", tag="events", response=Cursor, roles=OPERATORS)
async def agent_cursor(call: Call) -> Cursor:
    """Where an agent's stream resumes: every event up to this seq was handled."""
    name = call.param("agent")
    return Cursor(agent=name, seq=await call.platform.store.get_cursor(cursor_name(call.user, name)))


def cursor_name(user: User, agent: str) -> str:
    """Agents are named per user, so two teams' workers never share a cursor by accident."""
    return f"{user.name}/{agent}"


def visible_to(user: User, event: Event) -> bool:
    """Members see events of their own jobs and files, and events that are about neither."""
    if user.role is not Role.MEMBER:
        return True
    if event.context.job_id is None and not event.topic.startswith("file:"):
        return True
    return bool(event.payload.get("createdBy") == user.name)


def forbid(user: User, route: Route) -> None:
    if user.role not in route.roles:
        allowed = " or ".join(sorted(r.value for r in route.roles))
        raise Forbidden(f"{route.method} {route.path} needs the {allowed} role; {user.name} is {user.role.value}.",
                        details={"role": user.role.value})


# Routes kept in modules of their own register in the same table, so that whoever reads ROUTES has them all.
from listener.platform import grid as _grid  # noqa: E402, F401
from listener.platform import user_routes  # noqa: E402, F401
