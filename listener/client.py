"""Client: the Api over HTTP, so a listener or a script can drive a remote `listener serve`.

```python
async with Client("http://127.0.0.1:8080", token=token) as client:
    job = await client.jobs.create(type="workbook", operation="export")
    job = await job.wait(timeout=60)          # woken by the event stream, not by polling
    print(job.status, job.outcome)
```

It behaves as the in-process `platform.api` does, down to the exceptions: the
server's error body comes back as the same class of `listener.errors`, with
its message and details. Arguments are checked with the same wire models
before they are sent, so bad input raises the same `Invalid` as in-process.
"""

from __future__ import annotations

import contextlib
import enum
import io
import json
from collections.abc import AsyncGenerator, AsyncIterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import anyio
from pydantic_core import from_json, to_json

from listener import topics as t
from listener.channel import takes
from listener.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    ListenerError,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
)
from listener.models import (
    Action,
    Commit,
    Document,
    DocumentCreate,
    DocumentUpdate,
    Event,
    File,
    Job,
    JobAck,
    JobAttach,
    JobBulk,
    JobBulkResult,
    JobCancel,
    JobCheckpoint,
    JobComplete,
    JobCounts,
    JobCountsQuery,
    JobCreate,
    JobData,
    JobErrors,
    JobFail,
    JobFilter,
    JobHeartbeat,
    JobItemError,
    JobListQuery,
    JobPriority,
    JobSettings,
    JobSplit,
    JobStatus,
    JobTrigger,
    JobType,
    JobUpdate,
    Model,
    Outcome,
    Page,
    Record,
    RetryPolicy,
    Sheet,
    Space,
    SpaceCreate,
    Workbook,
    WorkbookCreate,
    job_spec,
    metadata_terms,
    parse,
    refuse_nul,
)
from listener.remote import EventStream, run_listener
from listener.schedules import Schedule, ScheduleCreate, SchedulesApi, ScheduleUpdate
from listener.snapshots import (
    Snapshot,
    SnapshotCreate,
    SnapshotQuery,
    SnapshotRecords,
    SnapshotRecordsQuery,
    SnapshotsApi,
)
from listener.types import UNSET
from listener.webhooks import (
    NewWebhook,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryQuery,
    WebhooksApi,
    WebhookStatus,
)

__all__ = ["Client", "ClientState", "EventStream", "ServerUnavailable", "error_from_body", "run_listener"]

API: Final = "/api/v1"
ENDED_TOPICS: Final = (t.JOB_COMPLETED, t.JOB_FAILED, t.JOB_CANCELLED, t.JOB_DELETED)
_ERRORS: Final[dict[str, type[ListenerError]]] = {
    cls.code: cls for cls in (NotFound, Conflict, Invalid, Unauthorized, Forbidden, Gone, TooLarge, RateLimited)
}
_WS_CLOSE_TIMEOUT: Final = 5.0
_WS_HEARTBEAT: Final = 30.0
_LARGE_BODY: Final = 1 << 20


class ServerUnavailable(ConnectionError):
    """No server answered: the connection was refused, dropped or timed out."""

    def __init__(self, message: str, *, urls: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.urls = list(urls)


class ClientState(enum.Enum):
    """Where a Client is in its life: it opens once and closes once."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def error_from_body(status: int, body: bytes, what: str) -> ListenerError:
    """The exception a server error response stands for: the class named by its `code`, with its message."""
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    return error_from_answer(status, error, what, body)


def error_from_answer(status: int, error: Any, what: str, raw: bytes = b"") -> ListenerError:
    """The exception an error body's `error` object (`code`, `message`, `details`) stands for."""
    try:
        code, message, details = error["code"], error["message"], error.get("details")
    except (KeyError, TypeError, AttributeError):
        text = raw.decode("utf-8", "replace").strip()[:200] or str(error or "")[:200]
        return ListenerError(f"{what} answered {status} without a Listener error body: {text or '(empty)'}")
    return _ERRORS.get(str(code), ListenerError)(str(message), details=details)


def _path(*parts: str) -> str:
    # Ids go into the path quoted, so an id like "../users" cannot name another route.
    return "/".join(quote(p, safe="") for p in parts)


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not UNSET}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _query_params(query: Model) -> list[tuple[str, str]]:
    """A validated query model as a query string's pairs: camelCase names, a list as its name repeated."""
    params: list[tuple[str, str]] = []
    for name, value in query.model_dump(by_alias=True, exclude_defaults=True).items():
        for one in value if isinstance(value, list) else [value]:
            params.append((name, ("true" if one else "false") if isinstance(one, bool) else str(one)))
    return params


def _dump(model: Any) -> dict[str, Any]:
    """A body model as camelCase JSON with only the fields the caller gave (None included: it clears)."""
    result: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return result


class Client:
    """The Listener Api over HTTP: `async with Client(url, token=...) as client:`.

    Args:
        base_url: the server's root URL (`http://host:8080`), or a list of replicas' URLs:
            when one refuses connections, requests and event streams move to the next.
        token: the bearer token (`listener users create` prints one).
        timeout: seconds a request may take before it raises TimeoutError.

    It opens once and closes once; every Job it returns is bound to it, so
    `await job.refresh()` and `await job.wait()` work.
    """

    def __init__(self, base_url: str | Sequence[str], *, token: str | None = None, timeout: float = 30.0) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("Client needs at least one server URL.")
        self.urls = [u.rstrip("/").removesuffix(API) for u in urls]
        self.state = ClientState.UNOPENED
        self._token = token
        self._timeout = timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
        self.channel: EventStream | None = None
        """The stream whose socket carries this client's job calls (the worker channel): one opened with calls=True."""
        self.jobs = ClientJobs(self)
        self.spaces = ClientSpaces(self)
        self.workbooks = ClientWorkbooks(self)
        self.sheets = ClientSheets(self)
        self.records = ClientRecords(self)
        self.snapshots = ClientSnapshots(self)
        self.documents = ClientDocuments(self)
        self.actions = ClientActions(self)
        self.events = ClientEvents(self)
        self.files = ClientFiles(self)
        self.schedules = ClientSchedules(self)
        self.webhooks = ClientWebhooks(self)

    def __repr__(self) -> str:
        return f"Client({self.url!r}, state={self.state.value})"

    @property
    def url(self) -> str:
        """The server URL requests go to now (it moves to the next one when a server is unreachable)."""
        return self.urls[self._current]

    async def __aenter__(self) -> Client:
        if self.state is ClientState.OPENED:
            raise RuntimeError("Cannot open a client instance more than once.")
        if self.state is ClientState.CLOSED:
            raise RuntimeError("Cannot reopen a client instance, once it has been closed.")
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=self._timeout))
        self.state = ClientState.OPENED
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session; the client cannot be used afterwards."""
        if self.state is not ClientState.CLOSED and self._session is not None:
            with anyio.CancelScope(shield=True):
                await self._session.close()
        self.state = ClientState.CLOSED

    def stream(
        self,
        *,
        after: int | None = None,
        agent: str | None = None,
        topics: str | Sequence[str] = (),
        filter: Mapping[str, Any] | None = None,
        share: bool = False,
        ready: Sequence[Sequence[Mapping[str, Any]]] | None = None,
        calls: bool = False,
        backoff_start: float = 0.1,
        backoff_factor: float = 2.0,
        backoff_max: float = 5.0,
        backoff_jitter: float = 0.5,
    ) -> EventStream:
        """The event log as a live stream: `async with client.stream(agent="worker") as events:`.

        Args:
            after: start after this seq; None resumes from `agent`'s server-side cursor (a new agent
                starts at the newest event), or starts at the newest event when there is no agent.
            agent: the name whose cursor `await events.ack(seq)` moves.
            topics: only events on these topics (globs allowed); all when empty.
            filter: only events matching this filter (as `Listener.on` takes).
            share: share `agent`'s job:ready events with its other sharing streams, each to one of them
                (the one with the fewest in hand), as `run_listener`'s workers do; every other event still
                reaches each stream. Only for streams that handle the jobs and ack: a job handed to a
                stream is the others' again only when that stream closes.
            ready: this stream is a worker starting: for each of its job:ready handlers, the list of
                its filters. Every job still ready that one of them takes is announced again (oldest
                first), so jobs created before the worker started reach it; as `run_listener` sends.
            calls: while the stream is open, this client's job calls (creates, and the moves of the jobs it
                runs) go over its socket, many per frame, instead of one HTTP request each (the worker
                channel; `run_listener` does this). Their answers and errors are the same either way.
            backoff_start, backoff_factor, backoff_max, backoff_jitter: the delay before reconnecting
                after a dropped connection: start, multiplied by factor each failed try, capped at max,
                less up to `jitter` of itself at random so that workers do not reconnect in step.
        """
        return EventStream(self, after=after, agent=agent, topics=[topics] if isinstance(topics, str) else topics,
                           filter=filter, share=share, ready=ready, calls=calls, backoff_start=backoff_start,
                           backoff_factor=backoff_factor, backoff_max=backoff_max, backoff_jitter=backoff_jitter)

    # -- transport ---------------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        if self.state is ClientState.UNOPENED or self._session is None:
            raise RuntimeError("The client is not open yet: use it as `async with Client(url) as client:`.")
        if self.state is ClientState.CLOSED:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        return self._session

    def _fail_over(self, index: int) -> None:
        # Only the first to notice a failed server moves on, so two failures of one server skip no replica.
        if self._current == index:
            self._current = (index + 1) % len(self.urls)

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Sequence[tuple[str, str]] | None = None, raw: bool = False) -> Any:
        """Send one request to `/api/v1{path}` and return its decoded JSON body (None for 204),
        or with `raw` the body's bytes as they came (a download).

        Raises the server's error as its `listener.errors` class, or ServerUnavailable
        when no server can be reached.
        """
        channel = self.channel
        if channel is not None and channel.takes_calls and not raw and params is None and takes(method, path):
            return await channel.call(method, path, body)
        session = self._open_session()
        data = None if body is None else to_json(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        tried: list[str] = []
        failure: BaseException | None = None
        for _ in self.urls:
            index = self._current
            url = self.urls[index] + API + path
            # aiohttp wants a large body as a stream (it warns on raw bytes); a new one for each try.
            payload = io.BytesIO(data) if data is not None and len(data) > _LARGE_BODY else data
            try:
                async with session.request(method, url, data=payload, params=params, headers=headers) as response:
                    status, answer = response.status, await response.read()
            except aiohttp.ClientConnectorError as exc:
                # The request never left: another replica may take it.
                tried.append(self.urls[index])
                failure = exc
                self._fail_over(index)
                continue
            except aiohttp.ClientConnectionError as exc:
                self._fail_over(index)
                if method == "GET":
                    tried.append(self.urls[index])
                    failure = exc
                    continue
                # The server may have applied it before the connection dropped, so it is not sent again.
                raise ServerUnavailable(f"The connection to the Listener server at {self.urls[index]} was lost "
                                        f"during {method} {path}: {exc}", urls=[self.urls[index]]) from exc
            if status >= 400:
                raise error_from_body(status, answer, f"{method} {path}")
            if raw:
                return answer
            return from_json(answer) if answer else None  # pydantic's reader: about twice as fast as json's
        raise ServerUnavailable(f"Cannot reach the Listener server at {', '.join(tried)}: {failure}",
                                urls=tried) from failure

    async def _ws_connect(self, index: int, params: Sequence[tuple[str, str]]) -> aiohttp.ClientWebSocketResponse:
        """Open the event stream's websocket on the URL at `index`.

        Raises ServerUnavailable when that server cannot be reached (try again, or another),
        and the server's error (Unauthorized, Invalid...) when it refuses the stream.
        """
        session = self._open_session()
        url = f"{self.urls[index]}{API}/events/stream"
        try:
            return await session.ws_connect(url, params=params, heartbeat=_WS_HEARTBEAT,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=_WS_CLOSE_TIMEOUT))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status >= 500 or exc.status == RateLimited.status:
                raise ServerUnavailable(f"The Listener server at {self.urls[index]} answered {exc.status} to the "
                                        "event stream.", urls=[self.urls[index]]) from exc
            raise await self._handshake_error(session, url, params, exc) from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ServerUnavailable(f"Cannot reach the Listener server at {self.urls[index]}: {exc}",
                                    urls=[self.urls[index]]) from exc

    async def _handshake_error(self, session: aiohttp.ClientSession, url: str, params: Sequence[tuple[str, str]],
                               exc: aiohttp.WSServerHandshakeError) -> ListenerError:
        # A refused upgrade loses its body; the same request without the upgrade gets the same checks
        # (token, role, query) and so the server's error with its message and details.
        try:
            async with session.get(url, params=params) as response:
                if response.status == exc.status:
                    return error_from_body(response.status, await response.read(), "GET /events/stream")
        except aiohttp.ClientError:
            pass
        return ListenerError(f"The server refused the event stream: {exc.status} {exc.message}.")


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _job(self, data: Any) -> Job:
        return Job.model_validate(data).bind(self._client)


class ClientJobs(_Resource):
    """jobs.create / get / list / execute / ack / update / complete / fail / cancel / ... over HTTP."""

    async def create(
        self,
        *,
        type: JobType | str,
        operation: str,
        source: str | None = None,
        destination: str | None = None,
        trigger: JobTrigger | str = JobTrigger.IMMEDIATE,
        mode: str = "foreground",
        managed: bool = False,
        info: str | None = None,
        metadata: dict[str, Any] | None = None,
        input: dict[str, Any] | None = None,
        retry: RetryPolicy | dict[str, Any] | None = None,
        timeout_seconds: int | None = None,
        lease_seconds: int | None = None,
        max_lease_expirations: int | None = None,
        run_at: datetime | None = None,
        predecessor_ids: Sequence[str] | None = None,
        dedupe_key: str | None = None,
        debounce_seconds: float | None = None,
        priority: int | None = None,
        concurrency_key: str | None = None,
    ) -> Job:
        """Create a job. With trigger `immediate` (the default) it is ready at once and job:ready fires.

        With a `dedupe_key`, a job of this type:operation waiting with the key is returned (and with
        `debounce_seconds` takes this input and starts later) instead of a new one; `job.dedupe` says which.
        """
        return await self.create_from(job_spec(
            type=type, operation=operation, source=source, destination=destination, trigger=trigger, mode=mode,
            managed=managed, info=info, metadata=metadata, input=input, retry=retry, timeout_seconds=timeout_seconds,
            lease_seconds=lease_seconds, max_lease_expirations=max_lease_expirations, run_at=run_at,
            predecessor_ids=predecessor_ids, dedupe_key=dedupe_key, debounce_seconds=debounce_seconds,
            priority=priority, concurrency_key=concurrency_key))

    async def create_from(self, spec: JobCreate) -> Job:
        """Create a job from a validated `JobCreate`; with a dedupe key, the answer's `dedupe` is `job.dedupe`."""
        body = await self._client.request("POST", "/jobs", body=_dump(spec))
        dedupe = body.pop("dedupe", None) if isinstance(body, dict) else None
        return self._job(body).noted(dedupe)

    async def get(self, job_id: str) -> Job:
        """One job: status, progress, info, outcome, error and timestamps."""
        return self._job(await self._client.request("GET", f"/jobs/{_path(job_id)}"))

    async def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        type: JobType | str | Sequence[JobType | str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        parent_id: str | None = None,
        is_part: bool | None = None,
        search: str | None = None,
        metadata: Mapping[str, Any] | Sequence[str] | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Job]:
        """Jobs, newest first, filtered by status, type, operation, creator, search and metadata.

        `status` takes our statuses and Cocoa Canvas's, Fiddler's and Zoltar's words, in any case
        (`SUCCESS`, `pending`, `RETRY`, `TIMEOUT`: listener.status_words); `type` any job type.
        `parent_id` lists a split job's parts, in part order; `is_part=False` leaves parts out.
        `search` is a job id or its start, else text of the info or error message; `metadata` a dict
        or `key=value` terms; `sort` a JobSort (`-ended`, `duration`, ...). See listener.jobcalls.JobFilter.
        """
        query = parse(JobListQuery, {"status": _as_list(status), "type": _as_list(type),
                                     "operation": _as_list(operation), "created_by": created_by,
                                     "parent_id": parent_id, "is_part": is_part, "search": search,
                                     "metadata": metadata_terms(metadata), "sort": sort,
                                     "limit": limit, "offset": offset}, what="job query")
        params = _query_params(query)
        page = Page[Job].model_validate(await self._client.request("GET", "/jobs", params=params))
        for job in page.items:
            job.bind(self._client)
        return page

    async def counts(
        self,
        *,
        type: str | Sequence[str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        is_part: bool | None = None,
    ) -> JobCounts:
        """How many jobs there are in each status (and in all), of these types, operations and creator."""
        query = parse(JobCountsQuery, {"type": _as_list(type), "operation": _as_list(operation),
                                       "created_by": created_by, "is_part": is_part}, what="count query")
        return JobCounts.model_validate(await self._client.request("GET", "/job-counts",
                                                                   params=_query_params(query)))

    async def bulk(
        self,
        action: str,
        *,
        ids: Sequence[str] | None = None,
        filter: JobFilter | dict[str, Any] | None = None,
        expected_count: int | None = None,
    ) -> JobBulkResult:
        """Cancel, retry or delete many jobs (admins only): those of `ids`, or those `filter` matches, which must
        be `expected_count` of them; each makes its own move. Says which changed and which were refused."""
        body = parse(JobBulk, {"action": action, "ids": None if ids is None else list(ids), "filter": filter,
                               "expected_count": expected_count}, what="bulk move")
        return JobBulkResult.model_validate(await self._client.request("POST", "/jobs/bulk", body=_dump(body)))

    async def execute(self, job_id: str) -> Job:
        """Start a `manual` job: created → ready, and job:ready fires."""
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/execute"))

    async def ack(
        self,
        job_id: str,
        *,
        info: str | None = UNSET,  # type: ignore[assignment]
        progress: int | None = UNSET,  # type: ignore[assignment]
        estimated_completion_at: datetime | None = UNSET,  # type: ignore[assignment]
        retry: RetryPolicy | dict[str, Any] | None = UNSET,  # type: ignore[assignment]
        lease_seconds: int = UNSET,  # type: ignore[assignment]
    ) -> Job:
        """Claim a ready job: ready → executing. Of several concurrent acks exactly one wins; the rest get Conflict."""
        body = parse(JobAck, _given(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                    retry=retry, lease_seconds=lease_seconds))
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/ack", body=_dump(body)))

    async def update(
        self,
        job_id: str,
        *,
        info: str | None = UNSET,  # type: ignore[assignment]
        progress: int | None = UNSET,  # type: ignore[assignment]
        estimated_completion_at: datetime | None = UNSET,  # type: ignore[assignment]
        metadata: dict[str, Any] | None = UNSET,  # type: ignore[assignment]
        processed: int = UNSET,  # type: ignore[assignment]
        total: int = UNSET,  # type: ignore[assignment]
        attempt: int | None = None,
    ) -> Job:
        """Report progress on an executing job (renews its lease); only the fields given change (None clears one)."""
        body = parse(JobUpdate, _given(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                       metadata=metadata, processed=processed, total=total, attempt=attempt))
        return self._job(await self._client.request("PATCH", f"/jobs/{_path(job_id)}", body=_dump(body)))

    async def heartbeat(self, job_id: str, *, attempt: int | None = None) -> Job:
        """The worker running the job is alive: renew its lease. Conflict once the attempt is over."""
        body = parse(JobHeartbeat, _given(attempt=attempt))
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/heartbeat", body=_dump(body)))

    async def checkpoint(self, job_id: str, state: dict[str, Any], *, attempt: int | None = None) -> Job:
        """Save a small JSON state of an executing job; a retried attempt resumes from it."""
        body = parse(JobCheckpoint, _given(state=state, attempt=attempt))
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/checkpoint", body=_dump(body)))

    async def complete(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
        attempt: int | None = None,
    ) -> Job:
        """Finish an executing job successfully, with an optional outcome for the person who started it."""
        body = parse(JobComplete, _given(outcome=outcome, info=info, attempt=attempt))
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/complete", body=_dump(body)))

    async def fail(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
        error: str | None = None,
        kind: str = "error",
        retryable: bool = False,
        attempt: int | None = None,
    ) -> Job:
        """Fail an executing job's attempt; a `retryable` one with attempts left is scheduled to run again."""
        body = parse(JobFail, _given(outcome=outcome, info=info, error=error, kind=kind, retryable=retryable,
                                     attempt=attempt))
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/fail", body=_dump(body)))

    async def retry(self, job_id: str) -> Job:
        """Run a failed job again by hand (the outcome's `retry` button)."""
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/retry"))

    async def retry_failed_items(self, job_id: str) -> Job:
        """A new job of the same type for exactly the items the ended job's error log names (its `retryOf`)."""
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/retry-failed-items"))

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Give a job that has not started another priority (higher runs first); job:updated fires."""
        body = parse(JobPriority, {"priority": priority})
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/priority", body=_dump(body)))

    async def split(
        self,
        job_id: str,
        *,
        parts: int | Sequence[dict[str, Any]],
        run_in_parallel: bool = True,
        settle: str = "listener",
        attempt: int | None = None,
    ) -> Job:
        """Split an executing job into parts; job:parts-completed fires when they have all finished."""
        body = parse(JobSplit, _given(parts=parts if isinstance(parts, int) else list(parts),
                                      run_in_parallel=run_in_parallel, settle=settle, attempt=attempt), what="split")
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/split", body=_dump(body)))

    async def configure(
        self,
        job: str,
        *,
        max_running: int | None = None,
        starts_per_second: float | None = None,
        timeout_seconds: int | None = None,
        max_lease_expirations: int | None = None,
        priority: int | None = None,
        max_running_per_key: int | None = None,
        starts_per_second_per_key: float | None = None,
    ) -> JobSettings:
        """Set the limits and default timeout of one type:operation (admins only)."""
        settings = parse(JobSettings, {"job": job, "max_running": max_running, "starts_per_second": starts_per_second,
                                       "timeout_seconds": timeout_seconds,
                                       "max_lease_expirations": max_lease_expirations, "priority": priority,
                                       "max_running_per_key": max_running_per_key,
                                       "starts_per_second_per_key": starts_per_second_per_key},
                         what="job settings")
        body = settings.model_dump(by_alias=True, exclude={"job"})
        return JobSettings.model_validate(
            await self._client.request("PUT", f"/job-settings/{_path(settings.job)}", body=body))

    async def settings(self) -> Sequence[JobSettings]:
        """The limits and default timeouts set per type:operation."""
        data = await self._client.request("GET", "/job-settings")
        return [JobSettings.model_validate(item) for item in data["items"]]

    async def attach_file(self, job_id: str, file_id: str, *, role: str) -> Job:
        """Attach an uploaded file to the job as its `input`, `output` or `error_report`."""
        body = parse(JobAttach, {"file_id": file_id, "role": role}, what="attachment")
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/files", body=_dump(body)))

    async def write_data(self, job_id: str, rows: Sequence[dict[str, Any]]) -> int:
        """Append result rows to the job's data (its data.csv); returns how many rows it has."""
        body = parse(JobData, {"rows": list(rows)}, what="job data")
        answer = await self._client.request("POST", f"/jobs/{_path(job_id)}/data", body=_dump(body))
        return int(answer["total"])

    async def data_csv(self, job_id: str) -> bytes:
        """The job's data as CSV (NotFound without data, Gone once expired)."""
        data: bytes = await self._client.request("GET", f"/jobs/{_path(job_id)}/data.csv", raw=True)
        return data

    async def errors_csv(self, job_id: str) -> bytes:
        """The job's error log as CSV: item, message, time."""
        data: bytes = await self._client.request("GET", f"/jobs/{_path(job_id)}/errors.csv", raw=True)
        return data

    async def log_errors(self, job_id: str, errors: Sequence[JobItemError | dict[str, Any]]) -> int:
        """Append entries (`item`, `message`) to the job's error log; returns the log's length."""
        body = parse(JobErrors, {"errors": list(errors)}, what="errors")
        answer = await self._client.request("POST", f"/jobs/{_path(job_id)}/errors", body=_dump(body))
        return int(answer["total"])

    async def log_error(self, job_id: str, *, message: str, item: str | None = None) -> int:
        """Append one entry to the job's error log; returns the log's length."""
        return await self.log_errors(job_id, [{"item": item, "message": message}])

    async def errors(self, job_id: str, *, limit: int = 100, offset: int = 0) -> Page[JobItemError]:
        """A page of the job's error log, oldest first."""
        answer = await self._client.request("GET", f"/jobs/{_path(job_id)}/errors",
                                            params=[("limit", str(limit)), ("offset", str(offset))])
        return Page[JobItemError].model_validate(answer)

    async def cancel(self, job_id: str, *, info: str | None = UNSET) -> Job:  # type: ignore[assignment]
        """Cancel a job that has not ended; a handler running it should stop."""
        body = parse(JobCancel, _given(info=info))
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/cancel", body=_dump(body)))

    async def acknowledge_outcome(self, job_id: str) -> Job:
        """Record that the person saw the outcome of a finished job (job:outcome-acknowledged)."""
        return self._job(await self._client.request("POST", f"/jobs/{_path(job_id)}/outcome/acknowledge"))

    async def delete(self, job_id: str) -> None:
        """Delete a job that is not executing (cancel it first); job:deleted fires."""
        await self._client.request("DELETE", f"/jobs/{_path(job_id)}")

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is complete, failed or cancelled and return it.

        Woken by the event stream, not by polling. Raises TimeoutError when `timeout`
        seconds pass first, NotFound if the job does not exist or is deleted.
        """
        with anyio.fail_after(timeout):
            # The head is read before the job, so an end that happens in between is in the stream's backlog.
            head = await self._client.events.head()
            job = await self.get(job_id)
            if job.status.is_terminal:
                return job
            async with self._client.stream(after=head, topics=ENDED_TOPICS, filter={"jobId": job_id}) as events:
                async for _event in events:
                    job = await self.get(job_id)  # after job:deleted this raises NotFound, as in-process
                    if job.status.is_terminal:
                        return job
        raise ListenerError(f"The event stream ended before job {job_id} finished.")


class ClientSpaces(_Resource):
    """spaces.create / get / list over HTTP."""

    async def create(self, *, name: str, namespace: str | None = None,
                     metadata: dict[str, Any] | None = None) -> Space:
        """Create a space (space:created); listeners scoped with `namespace(...)` see only its events."""
        spec = parse(SpaceCreate, {"name": name, "namespace": namespace, "metadata": metadata or {}}, what="space")
        return Space.model_validate(await self._client.request("POST", "/spaces", body=_dump(spec)))

    async def get(self, space_id: str) -> Space:
        """One space."""
        return Space.model_validate(await self._client.request("GET", f"/spaces/{_path(space_id)}"))

    async def list(self) -> list[Space]:
        """Every space."""
        data = await self._client.request("GET", "/spaces")
        return [Space.model_validate(item) for item in data["items"]]


class ClientWorkbooks(_Resource):
    """workbooks.create / get / list / delete over HTTP."""

    async def create(
        self,
        *,
        name: str,
        sheets: Sequence[dict[str, Any]] = (),
        actions: Sequence[dict[str, Any] | Action] = (),
        space_id: str | None = None,
        labels: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Workbook:
        """Create a workbook with its sheets and mounted actions (workbook:created)."""
        spec = parse(WorkbookCreate, {"name": name, "sheets": list(sheets), "actions": list(actions),
                                      "space_id": space_id, "labels": list(labels), "metadata": metadata or {}},
                     what="workbook")
        return Workbook.model_validate(await self._client.request("POST", "/workbooks", body=_dump(spec)))

    async def get(self, workbook_id: str) -> Workbook:
        """One workbook with its sheets."""
        return Workbook.model_validate(await self._client.request("GET", f"/workbooks/{_path(workbook_id)}"))

    async def list(self, *, space_id: str | None = None) -> list[Workbook]:
        """Workbooks, optionally of one space."""
        params = [("spaceId", space_id)] if space_id is not None else None
        data = await self._client.request("GET", "/workbooks", params=params)
        return [Workbook.model_validate(item) for item in data["items"]]

    async def delete(self, workbook_id: str) -> None:
        """Delete a workbook, its sheets and their records (workbook:deleted)."""
        await self._client.request("DELETE", f"/workbooks/{_path(workbook_id)}")


class ClientSheets(_Resource):
    """sheets.get / list over HTTP."""

    async def get(self, sheet_id: str) -> Sheet:
        """One sheet."""
        return Sheet.model_validate(await self._client.request("GET", f"/sheets/{_path(sheet_id)}"))

    async def list(self, *, workbook_id: str) -> list[Sheet]:
        """The sheets of a workbook."""
        data = await self._client.request("GET", "/sheets", params=[("workbookId", workbook_id)])
        return [Sheet.model_validate(item) for item in data["items"]]


class ClientRecords(_Resource):
    """records.insert / update / delete / get over HTTP; every change is one commit (commit:created)."""

    async def insert(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> list[Record]:
        """Insert records (each a dict of field key to value) in one commit."""
        data = await self._client.request("POST", f"/sheets/{_path(sheet_id)}/records",
                                          body={"records": list(records)})
        return [Record.model_validate(item) for item in data["items"]]

    async def update(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> Commit:
        """Update records given as `{"id": ..., "values": {...}}`; only the values given change."""
        # In-process, a missing "values" means no change and other keys are ignored; send the same.
        items = [{"id": r.get("id"), "values": r.get("values", {})} if isinstance(r, dict) else r for r in records]
        data = await self._client.request("PATCH", f"/sheets/{_path(sheet_id)}/records", body={"records": items})
        return Commit.model_validate(data)

    async def delete(self, sheet_id: str, ids: Sequence[str]) -> Commit:
        """Delete records by id in one commit."""
        data = await self._client.request("POST", f"/sheets/{_path(sheet_id)}/records/delete",
                                          body={"ids": list(ids)})
        return Commit.model_validate(data)

    async def get(self, sheet_id: str, *, limit: int = 100, offset: int = 0) -> Page[Record]:
        """A page of a sheet's records, in insertion order."""
        data = await self._client.request("GET", f"/sheets/{_path(sheet_id)}/records",
                                          params=[("limit", str(limit)), ("offset", str(offset))])
        return Page[Record].model_validate(data)


class ClientSchedules(_Resource, SchedulesApi):
    """schedules.create / list / get / update / pause / resume / delete over HTTP (signatures: SchedulesApi)."""

    async def _create(self, spec: ScheduleCreate) -> Schedule:
        return Schedule.model_validate(await self._client.request("POST", "/schedules", body=_dump(spec)))

    async def _list(self) -> list[Schedule]:
        data = await self._client.request("GET", "/schedules")
        return [Schedule.model_validate(item) for item in data["items"]]

    async def _get(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(await self._client.request("GET", f"/schedules/{_path(schedule_id)}"))

    async def _update(self, schedule_id: str, changes: ScheduleUpdate) -> Schedule:
        return Schedule.model_validate(await self._client.request("PATCH", f"/schedules/{_path(schedule_id)}",
                                                                  body=_dump(changes)))

    async def _pause(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(await self._client.request("POST", f"/schedules/{_path(schedule_id)}/pause"))

    async def _resume(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(await self._client.request("POST", f"/schedules/{_path(schedule_id)}/resume"))

    async def _delete(self, schedule_id: str) -> None:
        await self._client.request("DELETE", f"/schedules/{_path(schedule_id)}")


class ClientSnapshots(_Resource, SnapshotsApi):
    """snapshots.create / list / get / records / restore / delete over HTTP (the signatures are SnapshotsApi's)."""

    async def _create(self, spec: SnapshotCreate) -> Snapshot:
        return Snapshot.model_validate(await self._client.request("POST", "/snapshots", body=_dump(spec)))

    async def _list(self, query: SnapshotQuery) -> list[Snapshot]:
        data = await self._client.request("GET", "/snapshots", params=[("sheetId", query.sheet_id)])
        return [Snapshot.model_validate(item) for item in data["items"]]

    async def _get(self, snapshot_id: str) -> Snapshot:
        return Snapshot.model_validate(await self._client.request("GET", f"/snapshots/{_path(snapshot_id)}"))

    async def _records(self, snapshot_id: str, query: SnapshotRecordsQuery) -> SnapshotRecords:
        data = await self._client.request("GET", f"/snapshots/{_path(snapshot_id)}/records",
                                          params=[("limit", str(query.limit)), ("offset", str(query.offset))])
        return SnapshotRecords.model_validate(data)

    async def _restore(self, snapshot_id: str) -> Commit:
        return Commit.model_validate(await self._client.request("POST", f"/snapshots/{_path(snapshot_id)}/restore"))

    async def _delete(self, snapshot_id: str) -> None:
        await self._client.request("DELETE", f"/snapshots/{_path(snapshot_id)}")


class ClientWebhooks(_Resource, WebhooksApi):
    """webhooks.create / list / get / pause / resume / delete / deliveries over HTTP (an admin's token)."""

    async def _create(self, spec: WebhookCreate) -> NewWebhook:
        return NewWebhook.model_validate(await self._client.request("POST", "/webhooks", body=_dump(spec)))

    async def _list(self) -> list[Webhook]:
        return [Webhook.model_validate(item) for item in (await self._client.request("GET", "/webhooks"))["items"]]

    async def _get(self, webhook_id: str) -> Webhook:
        return Webhook.model_validate(await self._client.request("GET", f"/webhooks/{_path(webhook_id)}"))

    async def _set_status(self, webhook_id: str, status: WebhookStatus) -> Webhook:
        verb = "pause" if status is WebhookStatus.PAUSED else "resume"
        return Webhook.model_validate(await self._client.request("POST", f"/webhooks/{_path(webhook_id)}/{verb}"))

    async def _delete(self, webhook_id: str) -> None:
        await self._client.request("DELETE", f"/webhooks/{_path(webhook_id)}")

    async def _deliveries(self, webhook_id: str, query: WebhookDeliveryQuery) -> list[WebhookDelivery]:
        data = await self._client.request("GET", f"/webhooks/{_path(webhook_id)}/deliveries",
                                          params=[("limit", str(query.limit))])
        return [WebhookDelivery.model_validate(item) for item in data["items"]]


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str | bytes) else value


class ClientDocuments(_Resource):
    """documents.create / get / list / update / delete over HTTP."""

    async def create(
        self,
        *,
        title: str,
        body: str = "",
        space_id: str | None = None,
        actions: Sequence[dict[str, Any] | Action] = (),
    ) -> Document:
        """Create a document, in a space if given (document:created); the body is Markdown, stored as given."""
        spec = parse(DocumentCreate, {"title": title, "body": body, "space_id": space_id,
                                      "actions": _listed(actions)}, what="document")
        return Document.model_validate(await self._client.request("POST", "/documents", body=_dump(spec)))

    async def get(self, document_id: str) -> Document:
        """One document."""
        return Document.model_validate(await self._client.request("GET", f"/documents/{_path(document_id)}"))

    async def list(self, *, space_id: str | None = None) -> list[Document]:
        """Documents in creation order, optionally only those of one space."""
        params = [("spaceId", space_id)] if space_id is not None else None
        data = await self._client.request("GET", "/documents", params=params)
        return [Document.model_validate(item) for item in data["items"]]

    async def update(
        self,
        document_id: str,
        *,
        title: str = UNSET,  # type: ignore[assignment]
        body: str = UNSET,  # type: ignore[assignment]
        actions: Sequence[dict[str, Any] | Action] = UNSET,  # type: ignore[assignment]
    ) -> Document:
        """Change a document's title, body or actions; only those given change (document:updated)."""
        spec = parse(DocumentUpdate, _given(title=title, body=body, actions=_listed(actions)), what="document")
        return Document.model_validate(
            await self._client.request("PATCH", f"/documents/{_path(document_id)}", body=_dump(spec)))

    async def delete(self, document_id: str) -> None:
        """Delete a document (document:deleted)."""
        await self._client.request("DELETE", f"/documents/{_path(document_id)}")


class ClientActions(_Resource):
    """actions.trigger over HTTP."""

    async def trigger(self, source_id: str, operation: str, *, input: dict[str, Any] | None = None) -> Job:
        """Press an action's button: creates the job `domain:operation` on the object it is mounted on."""
        body = {"sourceId": source_id, "operation": operation, "input": input or {}}
        return self._job(await self._client.request("POST", "/actions/trigger", body=body))


class ClientEvents(_Resource):
    """events.list / head / cursor over HTTP (`client.stream()` follows them live)."""

    async def list(self, *, after: int = 0, limit: int = 100, job_id: str | None = None) -> list[Event]:
        """Events in `seq` order after a position, optionally only those about one job."""
        params = [("after", str(after)), ("limit", str(limit))]
        if job_id is not None:
            params.append(("jobId", job_id))
        data = await self._client.request("GET", "/events", params=params)
        return [Event.model_validate(item) for item in data["items"]]

    async def head(self) -> int:
        """The seq of the newest event."""
        data = await self._client.request("GET", "/events/head")
        return int(data["seq"])

    async def cursor(self, agent: str) -> int | None:
        """Where `agent`'s stream resumes (every event up to it was handled), or None for a new agent."""
        data = await self._client.request("GET", f"/agents/{_path(agent)}/cursor")
        seq = data["seq"]
        return None if seq is None else int(seq)


# -- files ------------------------------------------------------------------------------

_FILE_CHUNK: Final = 256 * 1024


class ClientFiles(_Resource):
    """files.upload / get / list / read / stream / download / delete over HTTP; the bytes stream both ways."""

    def _transfer_timeout(self) -> aiohttp.ClientTimeout:
        # A transfer may take longer than any one request should: bound each wait, not the whole.
        t = self._client._timeout
        return aiohttp.ClientTimeout(total=None, connect=t, sock_read=t)

    async def _send(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        """A response whose status is below 400 (the caller releases it), else the server's error raised."""
        session = self._client._open_session()
        tried: list[str] = []
        failure: BaseException | None = None
        for _ in self._client.urls:
            index = self._client._current
            url = self._client.urls[index] + API + path
            try:
                response = await session.request(method, url, timeout=self._transfer_timeout(), **kwargs)
            except aiohttp.ClientConnectorError as exc:  # it never left: another replica may take it
                tried.append(self._client.urls[index])
                failure = exc
                self._client._fail_over(index)
                continue
            except aiohttp.ClientConnectionError as exc:
                self._client._fail_over(index)
                raise ServerUnavailable(f"The connection to the Listener server at {self._client.urls[index]} was "
                                        f"lost during {method} {path}: {exc}", urls=[self._client.urls[index]]) from exc
            if response.status >= 400:
                async with response:
                    raise error_from_body(response.status, await response.read(), f"{method} {path}")
            return response
        raise ServerUnavailable(f"Cannot reach the Listener server at {', '.join(tried)}: {failure}",
                                urls=tried) from failure

    async def upload(
        self,
        data: bytes | AsyncIterable[bytes] | Path,
        *,
        name: str | None = None,
        mime_type: str | None = None,
        space_id: str | None = None,
        actions: Sequence[dict[str, Any] | Action] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> File:
        """Upload a file as multipart/form-data; a Path or an async iterable is streamed, never read whole.

        `name` defaults to the path's name (else "file"); the server makes it safe, guesses `mime_type`
        from it when not given, and answers TooLarge past its size limit (nothing is kept then).
        """
        if name is None:
            name = data.name if isinstance(data, Path) else "file"
        refuse_nul(name, "name")
        with contextlib.ExitStack() as stack, aiohttp.MultipartWriter("form-data") as form:
            # The fields that describe the file come first: the server checks them before it keeps a byte.
            fields = {"spaceId": space_id, "name": name, "mimeType": mime_type,
                      "actions": None if actions is None else to_json(list(actions), by_alias=True).decode(),
                      "metadata": None if metadata is None else to_json(metadata).decode()}
            for field_name, value in fields.items():
                if value is not None:
                    form.append(value).set_content_disposition("form-data", name=field_name)
            content: Any
            if isinstance(data, Path):
                content = stack.enter_context(data.open("rb"))
            elif isinstance(data, bytes | bytearray | memoryview):
                content = io.BytesIO(data)  # aiohttp wants large bytes as a stream (it warns on raw bytes)
            else:
                content = aiohttp.AsyncIterablePayload(data)
            part = form.append(content, {"Content-Type": mime_type or "application/octet-stream"})
            part.set_content_disposition("form-data", name="file", filename=name)
            response = await self._send("POST", "/files", data=form)
            async with response:
                return File.model_validate_json(await response.read())

    async def get(self, file_id: str) -> File:
        """A file's metadata: name, size, media type, sha256, space and actions."""
        return File.model_validate(await self._client.request("GET", f"/files/{_path(file_id)}"))

    async def list(self, *, space_id: str | None = None) -> list[File]:
        """Files in upload order (a member's own only), optionally of one space."""
        params = [("spaceId", space_id)] if space_id is not None else None
        data = await self._client.request("GET", "/files", params=params)
        return [File.model_validate(item) for item in data["items"]]

    async def stream(self, file_id: str) -> AsyncGenerator[bytes, None]:
        """A file's bytes, a chunk at a time as they arrive."""
        response = await self._send("GET", f"/files/{_path(file_id)}/content")
        async with response:
            async for chunk in response.content.iter_chunked(_FILE_CHUNK):
                yield chunk

    async def read(self, file_id: str) -> bytes:
        """A file's bytes, whole: for small files (`stream` or `download` the large ones)."""
        out = bytearray()
        async with contextlib.aclosing(self.stream(file_id)) as chunks:
            async for chunk in chunks:
                out += chunk
        return bytes(out)

    async def download(self, file_id: str, path: Path | str) -> Path:
        """Save a file's bytes to `path` as they arrive (complete, or not there at all); returns the path."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        try:
            async with await anyio.open_file(partial, "wb") as out, contextlib.aclosing(self.stream(file_id)) as chunks:
                async for chunk in chunks:
                    await out.write(chunk)
            await anyio.Path(partial).replace(target)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.Path(partial).unlink(missing_ok=True)
            raise
        return target

    async def delete(self, file_id: str) -> None:
        """Delete a file: its metadata (file:deleted), then its bytes."""
        await self._client.request("DELETE", f"/files/{_path(file_id)}")
