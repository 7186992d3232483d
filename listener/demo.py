"""`listener demo`: every example story on one embedded platform, with live progress.

The stories of `examples/` run at once under one root listener. Each story's
handlers hang off a child listener scoped to the namespace of the story's space,
so a commit in one story never starts another story's job. A live table fed by
the event log shows each job move; at the end, each job's outcome is printed.
`run_example` does the same for one example run on its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
from rich import box
from rich.console import Console, RenderableType
from rich.live import Live
from rich.logging import RichHandler
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from listener.api import Api
from listener.errors import ListenerError
from listener.listener import Listener
from listener.models import (
    Event,
    Job,
    JobStatus,
    Next,
    NextClearFilters,
    NextDownload,
    NextFiles,
    NextId,
    NextRetry,
    NextSnapshot,
    NextUrl,
    NextView,
    NextWait,
)
from listener.platform import DEFAULT_DB, Platform
from listener.types import Plugin

__all__ = ["JobBoard", "Scenario", "Story", "describe", "load_stories", "run_demo", "run_example"]

Scenario = Callable[[Api], Awaitable[list[str]]]
"""Sets up what a story needs, presses its buttons and returns the ids of the jobs it started."""

WAIT_TIMEOUT = 30.0
"""Seconds the demo waits for each job before showing it as it is."""

_STYLES: dict[str, tuple[str, str]] = {
    JobStatus.COMPLETE: ("✔", "green"),
    JobStatus.FAILED: ("✘", "red"),
    JobStatus.CANCELLED: ("⊘", "magenta"),
    JobStatus.EXECUTING: ("▶", "yellow"),
}


# -- the stories ----------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    """One example module: what to call it, its handlers and its scenario."""

    name: str
    title: str
    namespace: str
    register: Plugin
    scenario: Scenario
    module: ModuleType

    @classmethod
    def of(cls, module: ModuleType) -> Story:
        """The story an example module tells; it must define NAMESPACE, register and scenario."""
        missing = [name for name in ("NAMESPACE", "register", "scenario") if not hasattr(module, name)]
        if missing:
            raise ListenerError(f"Example {module.__name__} does not define {', '.join(missing)}.")
        return cls(module.__name__.rpartition(".")[2], _title(module), module.NAMESPACE, module.register,
                   module.scenario, module)


def _title(module: ModuleType | None) -> str:
    doc = (module.__doc__ if module else None) or "Example"
    return doc.strip().splitlines()[0].rstrip(".")


def load_stories() -> list[Story]:
    """The example stories, imported as the package `examples` from the repository root."""
    package = _import_examples()
    return [Story.of(importlib.import_module(f"examples.{name}")) for name in package.STORIES]


def _import_examples() -> ModuleType:
    for attempt in ("installed", "cwd"):
        if attempt == "cwd":
            sys.path.insert(0, str(Path.cwd()))
        try:
            package = importlib.import_module("examples")
        except ModuleNotFoundError as exc:
            if exc.name != "examples":
                raise
            continue
        if hasattr(package, "STORIES"):
            return package
        # Some distributions install a stray top-level `examples` package; ours names its stories.
        sys.modules.pop("examples", None)
    raise ListenerError(f"Cannot find the examples package from {Path.cwd()}: run the demo from the repository "
                        "root, the directory that holds examples/.")


@contextmanager
def _overrides(stories: Sequence[Story], **values: Any) -> Iterator[None]:
    """Set module constants (STEP_DELAY) of the stories that have them, for the block's duration."""
    saved: list[tuple[ModuleType, str, Any]] = []
    for story in stories:
        for name, value in values.items():
            if value is not None and hasattr(story.module, name):
                saved.append((story.module, name, getattr(story.module, name)))
                setattr(story.module, name, value)
    try:
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


# -- the live table -------------------------------------------------------------


@dataclass
class _Row:
    story: str
    job: str
    status: str = JobStatus.CREATED.value
    progress: int = 0
    info: str = ""


class JobBoard:
    """What the live table shows: one row per job, kept current from the event log.

    Pass `board.on_batch` to `platform.eventlog.on_batch`. With `stories` (namespace
    to story name), only the jobs of those namespaces are shown.
    """

    def __init__(self, stories: Mapping[str, str] | None = None) -> None:
        self.stories = stories
        self.rows: dict[str, _Row] = {}
        self.changed = anyio.Event()

    def on_batch(self, events: Sequence[Event]) -> None:
        """Take in a committed batch of events. It runs inside the store's commit, so it only copies fields."""
        for event in events:
            context, payload = event.context, event.payload
            if not event.topic.startswith("job:") or context.job_id is None or context.job is None:
                continue
            story = ""
            if self.stories is not None:
                if context.namespace is None or context.namespace not in self.stories:
                    continue
                story = self.stories[context.namespace]
            row = self.rows.setdefault(context.job_id, _Row(story, context.job))
            if isinstance(status := payload.get("status"), str):
                row.status = status
            if isinstance(progress := payload.get("progress"), int):
                row.progress = progress
            if isinstance(info := payload.get("info"), str):
                row.info = info
            if isinstance(error := payload.get("error"), dict) and isinstance(error.get("message"), str):
                row.info = error["message"].splitlines()[0]
        self.changed.set()

    def settle(self, job: Job) -> None:
        """Show a finished job as it ended: its outcome's message, or its error, in place of its last info."""
        row = self.rows.get(job.id)
        if row is not None:
            row.status, row.progress = job.status.value, job.progress
            message = job.error.message if job.error else job.outcome.message if job.outcome else None
            row.info = (message or row.info).splitlines()[0]
            self.changed.set()

    def render(self) -> Table:
        """The table as it stands."""
        table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
        if self.stories is not None:
            table.add_column("Story", no_wrap=True, style="dim", min_width=max(map(len, self.stories.values())))
        table.add_column("Job", no_wrap=True, min_width=max((len(row.job) for row in self.rows.values()), default=3))
        table.add_column("Status", no_wrap=True, min_width=9)
        table.add_column("Progress", no_wrap=True, min_width=21)
        table.add_column("Info", no_wrap=True, overflow="ellipsis", ratio=1)
        for row in self.rows.values():
            _, style = _STYLES.get(row.status, ("", "cyan"))
            bar = Table.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=100, completed=row.progress, width=16, complete_style=style or "cyan",
                                    finished_style=style or "cyan"), f"{row.progress:>3}%")
            cells: list[RenderableType] = [row.job, Text(row.status, style=style), bar, Text(row.info, style="dim")]
            table.add_row(*([row.story] if self.stories is not None else []), *cells)
        if not self.rows:
            table.caption = "Waiting for jobs…"
        return table


async def _refresh(live: Live, board: JobBoard) -> None:
    while True:
        await board.changed.wait()
        board.changed = anyio.Event()
        live.update(board.render(), refresh=True)
        await anyio.sleep(1 / 12)  # at most 12 frames a second, however fast events come


# -- the outcomes ---------------------------------------------------------------


def describe(job: Job) -> Text:
    """How a job ended, for a person: status, message, the `next` button, or the error."""
    icon, style = _STYLES.get(job.status, ("…", "cyan"))
    text = Text.assemble("  ", (f"{icon} {job.job}", "bold"), "  ", (job.status.value, style))
    message = job.outcome.message if job.outcome else None
    if message:
        text.append(f"\n      {message}")
    if job.error is not None and job.error.message != message:
        kind = "" if job.error.kind == "error" else f" ({job.error.kind.replace('_', ' ')})"
        text.append(f"\n      Error{kind}: ", style="red")
        text.append(job.error.message.replace("\n", "\n        "), style="red")
    if job.outcome is not None and job.outcome.next is not None:
        next = job.outcome.next
        text.append("\n      → ")
        text.append(f"[{next.label}]" if next.label else "(no button)", style="bold cyan")
        text.append(f"  {next.type}: {_next_detail(next)}", style="dim")
    if not job.status.is_terminal:
        text.append(f"\n      Still {job.status.value} after {WAIT_TIMEOUT:g}s: {job.info or 'no news yet'}",
                    style="yellow")
    return text


def _next_detail(next: Next) -> str:
    match next:
        case NextId():
            where = "/".join(p for p in (next.id, next.path) if p)
            return where + (f"?{next.query}" if next.query else "")
        case NextUrl():
            return next.url
        case NextDownload():
            return f"{next.url}" + (f" as {next.file_name!r}" if next.file_name else "")
        case NextFiles():
            return ", ".join(ref.file_id for ref in next.files)
        case NextSnapshot():
            return f"snapshot {next.snapshot_id}" + (f" of sheet {next.sheet_id}" if next.sheet_id else "")
        case NextView():
            hidden = ", ".join(next.hidden_columns) or "nothing"
            return f"sheet {next.sheet_id}, hiding {hidden}"
        case NextRetry():
            return "run the job again"
        case NextWait():
            extras = [name for name, on in (("fading", next.fade), ("confetti", next.confetti)) if on]
            return "the dialog stays open" + (f", with {' and '.join(extras)}" if extras else "")
        case NextClearFilters():
            return f"clear the filters of sheet {next.sheet_id or 'of the job'}"


def _print_outcomes(console: Console, sections: Sequence[tuple[str, Sequence[Job]]]) -> None:
    for title, jobs in sections:
        console.print()
        console.print(Text(title, style="bold underline"))
        for job in jobs:
            console.print(describe(job), soft_wrap=True)


# -- running --------------------------------------------------------------------


class _OneLine(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return ""


@contextmanager
def _logs_to(console: Console) -> Iterator[None]:
    """Show the framework's warnings above the live table, one line each, unless logging is set up already."""
    if logging.getLogger().handlers:
        yield
        return
    handler = RichHandler(console=console, level=logging.WARNING, show_time=False, show_path=False)
    handler.setFormatter(_OneLine())
    # Each failed job is shown with its error; job_handler's log of it would only repeat that, with a traceback.
    handler.addFilter(lambda record: record.name != "listener.job_handler")
    logger = logging.getLogger("listener")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def _wait(api: Api, job_id: str) -> Job:
    try:
        return await api.jobs.wait(job_id, timeout=WAIT_TIMEOUT)
    except TimeoutError:
        return await api.jobs.get(job_id)


async def _show(
    platform: Platform,
    listener: Listener,
    stories: Sequence[tuple[str, Scenario]],
    console: Console,
    board: JobBoard,
) -> list[tuple[str, list[Job]]]:
    """Run the listener, every scenario at once under a live table, wait for their jobs and print the outcomes."""
    # The demo shows what it does now: whatever happened since its last run is not its business.
    await platform.store.set_cursor(listener.name or "default", await platform.store.head())
    results: list[list[Job]] = [[] for _ in stories]
    errors: list[tuple[str, Exception]] = []

    async def run(i: int, title: str, scenario: Scenario) -> None:
        try:
            for job_id in await scenario(platform.api):
                results[i].append(job := await _wait(platform.api, job_id))
                board.settle(job)
        except Exception as exc:
            errors.append((title, exc))

    platform.eventlog.on_batch(board.on_batch)
    try:
        with _logs_to(console), Live(board.render(), console=console, auto_refresh=False) as live:
            async with platform.running(listener), anyio.create_task_group() as refresher:
                refresher.start_soon(_refresh, live, board)
                async with anyio.create_task_group() as scenarios:
                    for i, (title, scenario) in enumerate(stories):
                        scenarios.start_soon(run, i, title, scenario)
                refresher.cancel_scope.cancel()
            live.update(board.render(), refresh=True)
    finally:
        platform.eventlog.off_batch(board.on_batch)

    sections = [(title, jobs) for (title, _), jobs in zip(stories, results, strict=True)]
    _print_outcomes(console, sections)
    for title, exc in errors:
        console.print(Text.assemble("\n", (f"✘ {title}: could not run: ", "bold red"), f"{type(exc).__name__}: {exc}"),
                      soft_wrap=True)
    if errors:
        raise errors[0][1]
    return sections


async def run_demo(
    url: str | None = None,
    *,
    console: Console | None = None,
    step_delay: float | None = None,
) -> list[Job]:
    """Run every example story on the platform at `url` (default ./.listener/listener.db) with live progress.

    Args:
        url: the database, as `Platform.open` takes it.
        console: where to draw the table and the outcomes (default: the terminal).
        step_delay: seconds each step of a paced example takes (its STEP_DELAY); 0 runs at full speed.

    Returns every job the stories started, in story order, as it ended.
    """
    console = console or Console()
    stories = load_stories()
    root = Listener("demo")
    for story in stories:
        root.namespace(story.namespace).use(story.register)
    board = JobBoard({story.namespace: story.name.replace("_", " ") for story in stories})

    with _overrides(stories, STEP_DELAY=step_delay):
        async with Platform.open(url) as platform:
            console.print(Text.assemble(("Listener demo", "bold"), f" · {len(stories)} stories, every job live, "
                                        f"on {url or DEFAULT_DB}"))
            sections = await _show(platform, root, [(story.title, story.scenario) for story in stories], console,
                                   board)
    return [job for _, jobs in sections for job in jobs]


def run_example(
    listener: Listener,
    scenario: Scenario,
    *,
    url: str | None = None,
    console: Console | None = None,
    argv: Sequence[str] | None = None,
) -> list[Job]:
    """Run one example, as `python examples/<name>.py` does.

    In-process by default: the example's listener and scenario on the platform at `url`
    (default ./.listener/listener.db), its jobs shown live. With `--url` on the command line
    (`argv`, default `sys.argv[1:]`), only the scenario runs, against that server, with
    `--token` (or LISTENER_TOKEN): it presses the example's buttons and prints the id of each
    job it started, one a line, for a listener run elsewhere (`listener run`) to handle.

    Returns the jobs: as they ended in-process, as they were started against a server.
    """
    title = _title(sys.modules.get(scenario.__module__))
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--url", help="press the buttons on this server instead of running in-process")
    parser.add_argument("--token", default=os.environ.get("LISTENER_TOKEN"),
                        help="bearer token for --url (env LISTENER_TOKEN)")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)

    async def main() -> list[Job]:
        async with Platform.open(url) as platform:
            sections = await _show(platform, listener, [(title, scenario)], console or Console(), JobBoard())
        return sections[0][1]

    async def on_server() -> list[Job]:
        from listener.client import Client

        async with Client(options.url, token=options.token) as client:
            ids = await scenario(client)
            for job_id in ids:
                print(job_id, flush=True)
            return [await client.jobs.get(job_id) for job_id in ids]

    if options.url is None:
        return anyio.run(main)
    try:
        return anyio.run(on_server)
    except (ListenerError, ConnectionError) as exc:
        parser.exit(1, f"{parser.prog}: {exc}\n")
