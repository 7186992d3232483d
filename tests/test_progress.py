"""The live bar of `listener jobs wait`: what it draws as a job moves, its ETA by an injected clock, its timeout."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import anyio
import pytest
from rich.console import Console

from listener.client import Client
from listener.models import Job, JobStatus
from listener.progress import JobBar, remaining, still, wait_showing
from tests.conftest import ManualClock, Server

pytestmark = pytest.mark.anyio


class Screen(io.StringIO):
    """A terminal's screen as text, that says when something was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = anyio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        return written

    async def shows(self, *texts: str) -> None:
        """Wait until every one of `texts` has been drawn since the screen was last cleared."""
        with anyio.fail_after(10):
            while not all(text in self.getvalue() for text in texts):
                self.changed = anyio.Event()
                await self.changed.wait()

    def clear(self) -> None:
        self.seek(0)
        self.truncate()


def terminal(screen: io.StringIO, width: int = 140) -> Console:
    # No colours: the test reads the words; a terminal all the same, so the bar is drawn.
    return Console(file=screen, force_terminal=True, color_system=None, width=width)


def job_at(clock: ManualClock, **fields: object) -> Job:
    base = {"id": "jb_0123456789abcdef", "type": "workbook", "operation": "export", "job": "workbook:export",
            "status": "executing", "createdAt": clock.now(), "updatedAt": clock.now(), "startedAt": clock.now()}
    return Job.model_validate({**base, **fields})


def test_remaining_is_the_job_s_own_estimate_else_its_pace_else_unknown(clock: ManualClock) -> None:
    job = job_at(clock, progress=25, estimatedCompletionAt=clock.now() + timedelta(seconds=90))
    assert remaining(job, clock.now()) == timedelta(seconds=90)
    clock.advance(120)
    assert remaining(job, clock.now()) == timedelta(0)  # overdue: nothing left, not a negative time
    paced = job_at(clock, progress=25)
    clock.advance(60)
    assert remaining(paced, clock.now()) == timedelta(seconds=180)  # a quarter in a minute: three more
    assert remaining(job_at(clock, progress=0), clock.now()) is None
    assert remaining(job_at(clock, status="ready", startedAt=None, progress=0), clock.now()) is None
    assert remaining(job_at(clock, status="complete", progress=100), clock.now()) is None


def test_the_bar_shows_the_job_its_progress_info_and_eta_by_the_clock(clock: ManualClock) -> None:
    screen = io.StringIO()
    job = job_at(clock, progress=67, info="Exporting", estimatedCompletionAt=clock.now() + timedelta(seconds=30))
    with JobBar(terminal(screen), clock) as bar:
        bar.show(job)
        drawn = screen.getvalue()
        assert "jb_0123456789abcdef workbook:export" in drawn and "executing" in drawn
        assert "67%" in drawn and "Exporting" in drawn and "ETA 0:00:30" in drawn
        clock.advance(12)
        bar.redraw()
        assert "ETA 0:00:18" in screen.getvalue()  # the countdown moves with the clock, not with news
        bar.show(job_at(clock, status="ready", startedAt=None, progress=0))
        assert "ETA -:--:--" in screen.getvalue()


@pytest.mark.parametrize("width", [140, 100, 80, 60])
def test_the_bar_keeps_the_id_status_percentage_and_eta_whole_in_any_width(clock: ManualClock, width: int) -> None:
    screen = io.StringIO()
    job = job_at(clock, progress=67, info="Exporting 670 of 1,000 records",
                 estimatedCompletionAt=clock.now() + timedelta(seconds=30))
    with JobBar(terminal(screen, width), clock) as bar:
        bar.show(job)
    lines = {line for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue()).replace("\r", "\n").split("\n")
             if line.strip()}
    assert len(lines) == 1, lines
    line = lines.pop()
    assert len(line) <= width and "jb_0123456789abcdef " in line, line
    assert " executing " in line and " 67% " in line and " ETA 0:00:30 " in line, line
    assert ("━" in line, "workbook:export" in line, "1,000 records" in line) == (width >= 100, width >= 80,
                                                                                  width >= 140), line


def test_still_says_what_was_waited_for_how_long_and_where_it_stood(clock: ManualClock) -> None:
    assert still(job_at(clock, progress=67, info="Exporting"), 30) == \
        "Job jb_0123456789abcdef (workbook:export) still executing after 30s (67%, 'Exporting')."
    assert still(job_at(clock, status="ready", progress=0), 2.5) == \
        "Job jb_0123456789abcdef (workbook:export) still ready after 2.5s (0%)."


async def test_wait_draws_each_move_of_the_job_live_and_returns_it_ended(server: Server, clock: ManualClock) -> None:
    api = server.platform.api
    job = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    await api.jobs.update(job.id, progress=10, info="Reading")
    screen = Screen()
    async with Client(server.url, token=server.admin_token) as client, anyio.create_task_group() as tg:
        ended: list[Job] = []

        async def wait() -> None:
            ended.append(await wait_showing(client, job.id, timeout=20, console=terminal(screen), clock=clock))

        tg.start_soon(wait)
        await screen.shows("10%", "Reading", "executing")
        screen.clear()
        await api.jobs.update(job.id, progress=67, info="Exporting",
                              estimated_completion_at=clock.now() + timedelta(seconds=30))
        await screen.shows("67%", "Exporting", "ETA 0:00:30")
        await api.jobs.complete(job.id, outcome={"message": "Exported."})
    assert ended[0].status is JobStatus.COMPLETE and ended[0].outcome is not None


async def test_wait_without_a_terminal_draws_nothing_and_a_timeout_says_where_the_job_stood(server: Server) -> None:
    api = server.platform.api
    job = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    await api.jobs.update(job.id, progress=67, info="Exporting")
    screen = io.StringIO()
    async with Client(server.url, token=server.admin_token) as client:
        with pytest.raises(TimeoutError) as raised:
            await wait_showing(client, job.id, timeout=0.2, console=Console(file=screen))
        assert str(raised.value) == f"Job {job.id} (workbook:export) still executing after 0.2s (67%, 'Exporting')."
        with pytest.raises(TimeoutError):  # on a terminal too, and with --json no bar is drawn
            await wait_showing(client, job.id, timeout=0.2, console=terminal(screen), bar=False)
        assert screen.getvalue() == ""
        await api.jobs.complete(job.id)
        done = await wait_showing(client, job.id, timeout=5, console=Console(file=screen))
        assert done.status is JobStatus.COMPLETE and screen.getvalue() == ""
