"""A job's progress in a terminal: the live bar `listener jobs wait` shows until the job ends.

```python
job = await wait_showing(client, "jb_...", timeout=30, console=Console())
```

The bar follows the job's own events on the event stream and reads the job once per batch of them,
so a job that ticks a hundred times a second costs a few reads, not a hundred. On a console that is
not a terminal nothing is drawn: the wait is `client.jobs.wait`. Either way a timeout is a
TimeoutError that says what was waited for and how long, and where the job stood.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

import anyio
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TaskProgressColumn, TextColumn
from rich.table import Column
from rich.text import Text

from listener.client import Client
from listener.errors import ListenerError
from listener.models import Job
from listener.remote import EventStream
from listener.types import Clock, SystemClock

__all__ = ["JobBar", "follow", "remaining", "still", "wait_showing"]

REDRAW_SECONDS = 1.0
"""How often the bar is drawn again with no news from the job, so that its ETA counts down."""


def remaining(job: Job, now: datetime) -> timedelta | None:
    """How long the job has left: its own estimate (estimatedCompletionAt), else its pace so far; None unknown."""
    if job.status.is_terminal:
        return None
    if job.estimated_completion_at is not None:
        return max(job.estimated_completion_at - now, timedelta(0))
    if job.started_at is not None and 0 < job.progress < 100:
        return (now - job.started_at) * (100 - job.progress) / job.progress
    return None


def still(job: Job, timeout: float) -> str:
    """What a wait that timed out says: `Job jb_... (workbook:export) still executing after 30s (67%, 'Exporting').`"""
    where = f"{job.progress}%" + (f", {job.info!r}" if job.info else "")
    return f"Job {job.id} ({job.job}) still {job.status.value} after {timeout:g}s ({where})."


class _Eta(ProgressColumn):
    """`ETA 0:00:30`, read from the job and the clock each time the bar is drawn."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._clock = clock

    def render(self, task: Task) -> Text:
        job: Job = task.fields["job"]
        left = remaining(job, self._clock.now())
        if left is None:
            return Text("ETA -:--:--", style="progress.remaining")
        return Text(f"ETA {timedelta(seconds=round(left.total_seconds()))}", style="progress.remaining")


class JobBar:
    """One job's live bar on a console: `with JobBar(console) as bar: bar.show(job)`.

    It draws only when told (`show`, `redraw`), on the caller's thread, never from a thread of
    its own: what it writes is in order with the rest of the program's output.
    """

    def __init__(self, console: Console, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            _Eta(self.clock),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=console, auto_refresh=False, transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> JobBar:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._progress.stop()

    def show(self, job: Job) -> None:
        """Draw the job as it is now."""
        status, info = job.status.value, job.info or ""
        if self._task is None:
            self._task = self._progress.add_task(f"{job.id} {job.job}", total=100, completed=job.progress, job=job,
                                                 status=status, info=info)
        else:
            self._progress.update(self._task, completed=job.progress, job=job, status=status, info=info)
        self._progress.refresh()

    def redraw(self) -> None:
        """Draw again with no news: the ETA has moved with the clock."""
        self._progress.refresh()


async def wait_showing(client: Client, job_id: str, *, timeout: float | None, console: Console,
                       bar: bool = True, clock: Clock | None = None) -> Job:
    """Wait until the job is complete, failed or cancelled and return it, with a live bar on a terminal.

    Args:
        client: the server's Api.
        job_id: the job to wait for.
        timeout: seconds to wait at most; None waits as long as it takes.
        console: where the bar is drawn, only when it is a terminal.
        bar: False draws no bar even on a terminal.
        clock: where the ETA's "now" comes from (the wall clock unless a test gives one).

    Raises:
        TimeoutError: `timeout` passed with the job still running; the message says where it stood.
        NotFound: the job does not exist, or was deleted while waited for.
    """
    with anyio.move_on_after(timeout) as waited:
        if not (bar and console.is_terminal):
            return await client.jobs.wait(job_id)
        with JobBar(console, clock) as live:
            return await follow(client, job_id, live.show, idle=live.redraw)
    # Only our own deadline lands here: a network timeout inside is a TimeoutError that propagates.
    assert waited.cancelled_caught and timeout is not None
    job = await client.jobs.get(job_id)
    if job.status.is_terminal:
        return job  # it ended as the time ran out
    raise TimeoutError(still(job, timeout))


async def follow(client: Client, job_id: str, show: Callable[[Job], None], *,
                 idle: Callable[[], None] | None = None) -> Job:
    """Call `show` with the job now and after each batch of its events until it ends; returns it ended.

    `idle` is called every REDRAW_SECONDS without news.
    """
    # The head is read before the job, so a change made in between is in the stream's backlog.
    head = await client.events.head()
    job = await client.jobs.get(job_id)
    show(job)
    if job.status.is_terminal:
        return job
    news = anyio.Event()
    ended = False

    async def read(events: EventStream) -> None:
        nonlocal ended
        async for _event in events:
            news.set()
        ended = True
        news.set()

    async with client.stream(after=head, topics="job:*", filter={"jobId": job_id}) as events, \
            anyio.create_task_group() as tg:
        tg.start_soon(read, events)
        while True:
            with anyio.move_on_after(REDRAW_SECONDS if idle is not None else None):
                await news.wait()
            if not news.is_set():
                assert idle is not None
                idle()
                continue
            news = anyio.Event()
            # Events that came while this read was on its way wait for the next turn: one read for all of them.
            job = await client.jobs.get(job_id)  # after job:deleted this raises NotFound
            show(job)
            if job.status.is_terminal:
                tg.cancel_scope.cancel()
                return job
            if ended:
                raise ListenerError(f"The event stream ended before job {job_id} finished.")
    raise AssertionError("unreachable")  # pragma: no cover
