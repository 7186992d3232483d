"""The platform: the one owner of state, embedded in your process or behind `listener serve`.

```python
async with Platform.open("sqlite:///tmp/demo.db") as platform:
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        job = await platform.api.jobs.wait(job.id, timeout=10)
```
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio

from listener.errors import Invalid
from listener.listener import Listener
from listener.models import Event
from listener.platform import system, webhook_delivery
from listener.platform.blobs import Blobs, DiskBlobs, default_blobs
from listener.platform.domains import (
    ActionService,
    DocumentService,
    Domains,
    RecordService,
    SheetService,
    SpaceService,
    WorkbookService,
)
from listener.platform.eventlog import EventLog
from listener.platform.files import DEFAULT_MAX_FILE_SIZE, FileService
from listener.platform.jobs import DEFAULT_DATA_TTL, JobService
from listener.platform.ready_queue import announce_for
from listener.platform.scheduler import Scheduler
from listener.platform.schedules import ScheduleRunner, ScheduleService
from listener.platform.snapshots import SnapshotService
from listener.platform.store.base import Store
from listener.platform.store.sqlite import SqliteStore, Synchronous
from listener.platform.webhook_delivery import DeliverySettings
from listener.platform.webhooks import Changes, WebhookService
from listener.platform.workers import Connection, Workers
from listener.runner import Runner
from listener.tasks import task_scope
from listener.types import Clock, SystemClock

__all__ = ["DEFAULT_DB", "Platform", "PlatformApi"]

DEFAULT_DB = "sqlite:///.listener/listener.db"


class EventService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, *, after: int = 0, limit: int = 100, job_id: str | None = None) -> list[Event]:
        """Events in `seq` order after a position, optionally only those about one job."""
        if limit < 1 or limit > 1000:
            raise Invalid(f"limit: must be between 1 and 1000, not {limit}.",
                          details=[{"field": "limit", "message": "out of range"}])
        return await self._store.read_events(after, limit, job_id)


class PlatformApi:
    """The in-process Api: the services, acting as one actor."""

    def __init__(self, store: Store, eventlog: EventLog, clock: Clock, actor: str | None = None, *,
                 data_ttl: timedelta = DEFAULT_DATA_TTL, blobs: Blobs | None = None,
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE, webhook_changes: Changes | None = None) -> None:
        self._store, self._eventlog, self._clock = store, eventlog, clock
        self.actor = actor
        self.data_ttl = data_ttl
        domains = Domains(store, clock, actor)
        self.jobs = JobService(store, eventlog, clock, domains.context_of, actor, data_ttl=data_ttl)
        self.jobs.owner = self
        self.spaces = SpaceService(domains)
        self.workbooks = WorkbookService(domains)
        self.sheets = SheetService(domains)
        self.records = RecordService(domains, self.sheets)
        self.snapshots = SnapshotService(domains, self.sheets)
        self.documents = DocumentService(domains)
        self.actions = ActionService(domains, self.jobs)
        self.events = EventService(store)
        self.files = FileService(domains, blobs or default_blobs(store), max_size=max_file_size)
        self.schedules = ScheduleService(domains, lambda actor: self.as_actor(actor).jobs)
        self.webhooks = WebhookService(store, clock, actor, webhook_changes or Changes())

    def as_actor(self, actor: str | None) -> PlatformApi:
        """The same Api acting as someone else (recorded as `createdBy` and `actorId`)."""
        return PlatformApi(self._store, self._eventlog, self._clock, actor, data_ttl=self.data_ttl,
                           blobs=self.files.storage, max_file_size=self.files.max_size,
                           webhook_changes=self.webhooks.changes)


class PlatformState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///relative/path` or `sqlite:////absolute/path` URL, or of a plain path."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise Invalid(f"Unsupported database URL {url!r}: use sqlite:///path/to/file.db or postgresql://host/db.")
    path = unquote(parts.path)
    if parts.netloc or not path or path in ("/", "/:memory:"):
        raise Invalid(f"Database URL {url!r} does not name a file: use sqlite:///path/to/file.db.")
    # As SQLAlchemy: three slashes then a relative path, four for an absolute one.
    return Path(path[1:])


@asynccontextmanager
async def _open_store(url: str, *, synchronous: Synchronous, pool_size: int) -> AsyncIterator[Store]:
    if url.startswith(("postgresql://", "postgres://")):
        from listener.platform.store.postgres import PostgresStore

        async with PostgresStore.open(url, pool_size=pool_size) as pg:
            yield pg
    else:
        async with SqliteStore.open(sqlite_path(url), synchronous=synchronous) as sqlite:
            yield sqlite


class Platform:
    """The embedded platform over one store. Open it with `Platform.open(url)`."""

    def __init__(self, store: Store, clock: Clock, *, sweep_interval: float | None = 0.5,
                 retention: timedelta | None = timedelta(days=30), data_ttl: timedelta = DEFAULT_DATA_TTL,
                 blobs: Blobs | None = None, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> None:
        self.store = store
        self.clock = clock
        self.eventlog = EventLog(store)
        self.api = PlatformApi(store, self.eventlog, clock, data_ttl=data_ttl, blobs=blobs,
                               max_file_size=max_file_size)
        self.scheduler = Scheduler(self.api.as_actor("scheduler").jobs, clock, interval=sweep_interval or 0.5,
                                   retention=retention)
        # Beside the scheduler, on the same clock: makes the jobs of schedules whose tick has come.
        self.schedule_runner = ScheduleRunner(self.api.schedules, interval=sweep_interval or 0.5)
        self.sweeps = sweep_interval is not None
        self.workers = Workers()
        """The workers connected to this process (its event-stream agents and in-process listeners)."""
        self.deliverer: webhook_delivery.Deliverer | None = None
        """What delivers webhooks in this process (None if Platform.open was told not to)."""
        self.state = PlatformState.OPEN

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        synchronous: Synchronous = "NORMAL",
        pool_size: int = 10,
        sweep_interval: float | None = 0.5,
        retention: timedelta | None = timedelta(days=30),
        data_ttl: timedelta = DEFAULT_DATA_TTL,
        files_dir: Path | str | None = None,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        system_jobs: bool = True,
        max_items: int = 100_000,
        webhooks: DeliverySettings | None = DeliverySettings(),  # noqa: B008  (frozen: one instance is fine)
    ) -> AsyncIterator[Platform]:
        """Open the platform on a database (default: ./.listener/listener.db).

        Args:
            url: `sqlite:///relative.db`, `sqlite:////absolute.db`, a plain file path, or
                `postgresql://user@host/db[?schema=name]` for several replicas on one database.
            clock: where time comes from; tests pass one they control.
            synchronous: SQLite's `NORMAL` (a killed process loses nothing) or `FULL` (survives power loss).
            pool_size: PostgreSQL connections this process may open.
            sweep_interval: seconds between the scheduler's sweeps for due retries, leases and timeouts (and
                the schedules' for their ticks); None sweeps only when `platform.scheduler.sweep()` (and
                `platform.schedule_runner.sweep()`) is called (tests that move time by hand).
            retention: finished jobs older than this are deleted with their events (hourly); None keeps them.
            data_ttl: how long after a job ends its result rows (data.csv) stay; then 410 Gone.
            files_dir: the directory uploaded files' bytes go to; default: `<db file>.files/` beside a
                SQLite database, large objects in a PostgreSQL one.
            max_file_size: the largest file in bytes an upload may hold (413 TooLarge past it).
            system_jobs: run the system jobs (`file:extract`, `sheet:export`, `sheet:deleteRecords`,
                `sheet:findReplace`, created with `managed=True`) in this process, as the agent "system";
                every replica may (the ack makes each job run once). See listener/platform/system.py.
            max_items: the most rows or records one system job may process; a larger one fails up front.
            webhooks: how this process delivers webhooks (timeouts, backoff, leases; see
                listener/platform/webhook_delivery.py); None delivers none here (other replicas still may).
        """
        url = url or DEFAULT_DB
        if max_file_size < 1:
            raise Invalid(f"max_file_size: must be at least 1 byte, not {max_file_size}.")
        if max_items < 1:
            raise Invalid(f"max_items: must be at least 1, not {max_items}.")
        async with _open_store(url, synchronous=synchronous, pool_size=pool_size) as store:
            platform = cls(store, clock or SystemClock(), sweep_interval=sweep_interval, retention=retention,
                           data_ttl=data_ttl, blobs=DiskBlobs(Path(files_dir)) if files_dir is not None else None,
                           max_file_size=max_file_size)
            platform.eventlog.last_seq = await store.head()
            try:
                async with task_scope() as tg, AsyncExitStack() as agents:
                    if system_jobs:  # started first, so that it sees the first sweep's job:ready events
                        await agents.enter_async_context(system.running(platform, max_items=max_items))
                    if webhooks is not None:
                        platform.deliverer = await agents.enter_async_context(
                            webhook_delivery.running(platform, webhooks))
                    # Timers resume with the platform: retries, expired leases and timeouts that came
                    # due while it was down are handled by the first sweep.
                    if platform.sweeps:
                        tg.start_soon(platform.scheduler.run)
                        tg.start_soon(platform.schedule_runner.run)
                    yield platform
            finally:
                platform.state = PlatformState.CLOSED

    @asynccontextmanager
    async def running(
        self,
        listener: Listener,
        *,
        agent: str | None = None,
        concurrency: int = 10,
        grace: float = 10.0,
    ) -> AsyncIterator[Runner]:
        """Run `listener` in-process while the block runs.

        The runner is an agent named `agent` (default: the listener's name, else
        "default") whose cursor is kept in the store: after a crash it resumes
        after the last event it finished. A new agent starts at the newest event,
        but ready jobs are a queue: every job still ready for one of its handlers
        is announced again for it as it starts (a new job:ready), oldest first.
        """
        if self.state is not PlatformState.OPEN:
            raise RuntimeError("The platform is closed.")
        name = agent or listener.name or "default"
        start = await self.store.get_cursor(name)
        if start is None:
            start = await self.store.head()
            await self.store.set_cursor(name, start)

        async def save(seq: int) -> None:
            await self.store.set_cursor(name, seq)

        runner = Runner(listener, self.api.as_actor(f"agent:{name}"), concurrency=concurrency, grace=grace,
                        save_cursor=save, agent=name)
        async with self.eventlog.subscribe(start) as events, task_scope(cancel_on_exit=False) as tg:
            await tg.start(_run, runner, events, start)
            announce_for(tg, self.api.as_actor(f"agent:{name}").jobs, listener, start)
            worker = self.listening(listener, runner, cursor=name)
            try:
                yield runner
            finally:
                self.workers.remove(worker)
                runner.stop()

    def listening(self, listener: Listener, runner: Runner, *, cursor: str | None) -> Connection:
        """Register an in-process runner of `listener` as a worker (until `workers.remove`)."""
        return self.workers.add(kind="in-process", agent=runner.agent or "default", user=None,
                                takes=lambda event: bool(listener.handlers_for(event)),
                                connected_at=self.clock.now(), cursor=cursor, position=lambda: runner.cursor,
                                topics=sorted({r.topic.pattern for r in listener.registrations()}))


async def _run(runner: Runner, events: Any, start: int, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    await runner.run(events, task_status=task_status, start=start)
