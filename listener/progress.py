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
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from listener.client import Client
from listener.errors import ListenerError
from listener.models import Job, JobStatus
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


class JobBar:
    """One job's live line on a console: `with JobBar(console) as bar: bar.show(job)`.

    `jb_… workbook:export  executing  ━━━━━━━━╸━━━  67%  ETA 0:00:30  Exporting 670 of 1,000`

    However narrow the terminal, the id, job, status, percentage and ETA stay whole: the info is cut
    short first, then the bar gives way. It draws only when told (`show`, `redraw`), on the caller's
    thread, never from a thread of its own, so what it writes is in order with the rest of the output.
    """

    BAR_WIDTH = 24

    def __init__(self, console: Console, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.job: Job | None = None
        self._live = Live(self, console=console, auto_refresh=False, transient=True)

    def __enter__(self) -> JobBar:
        self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._live.stop()

    def show(self, job: Job) -> None:
        """Draw the job as it is now."""
        self.job = job
        self._live.refresh()

    def redraw(self) -> None:
        """Draw again with no news: the ETA has moved with the clock."""
        self._live.refresh()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.job is not None:
            yield self.line(self.job, options.max_width)

    def line(self, job: Job, width: int) -> Table:
        """The job's line, `width` characters at most."""
        left = remaining(job, self.clock.now())
        cells: list[RenderableType] = [
            Text(f"{job.id} {job.job}", style="bold"),
            Text(job.status.value, style=_STYLES.get(job.status, "cyan")),
            Text(f"{job.progress:>3}%"),
            Text("ETA " + ("-:--:--" if left is None else str(timedelta(seconds=round(left.total_seconds())))),
                 style="progress.remaining"),
        ]
        info = job.info or ""
        room = width - sum(cell.cell_len for cell in cells if isinstance(cell, Text)) - len(cells)
        if room < 0:  # too narrow for all of them whole: the id stays, the job's name (`jobs get` has it) goes
            room += len(job.job) + 1
            cells[0] = Text(job.id, style="bold")
        # The bar is as wide as leaves the info whole; at least 12 wide while 20 of the info still fit beside it.
        bar = min(self.BAR_WIDTH, max(room - len(info) - 1, min(12, room - 21)))
        line = Table.grid(padding=(0, 1), expand=False)
        for _ in cells[:2]:
            line.add_column(no_wrap=True)
        if bar >= 5:
            line.add_column(no_wrap=True, width=bar)
            cells.insert(2, ProgressBar(total=100, completed=job.progress, width=bar))
        for _ in cells[-2:]:
            line.add_column(no_wrap=True)
        line.add_column(no_wrap=True, overflow="ellipsis", max_width=max(room - (bar + 1 if bar >= 5 else 0), 1))
        line.add_row(*cells, Text(info, style="dim"))
        return line


_STYLES = {JobStatus.COMPLETE: "green", JobStatus.FAILED: "red", JobStatus.CANCELLED: "magenta",
           JobStatus.EXECUTING: "yellow"}


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
