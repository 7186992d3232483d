"""Logs: one JSON object (or text line) per record, carrying the job on every line logged while it is handled."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from listener import Event, JobStatus, Listener, Platform
from listener.cli import _parser
from listener.client import Client
from listener.logs import JsonFormatter, LogContextFilter, configure, current_context, log_context
from listener.models import RetryPolicy
from plugins.job_handler import Tick, job_handler
from tests.conftest import ManualClock
from tests.platform.test_reliability import until
from tests.test_dev import TOKEN, URL
from tests.test_processes import Lines

pytestmark = pytest.mark.anyio

log = logging.getLogger("listener.test_logs")


class Captured:
    """What `configure` wrote to its stream, as lines or as parsed JSON objects."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self, logger: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in self.lines()]
        return [line for line in found if logger is None or line["logger"] == logger]


def _captured(format: str) -> Iterator[Captured]:
    captured = Captured()
    root = logging.getLogger()
    level = root.level
    handler = configure(format, logging.INFO, stream=captured.stream)  # type: ignore[arg-type]
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    yield from _captured("json")


@pytest.fixture
def text_logs() -> Iterator[Captured]:
    yield from _captured("text")


@pytest.fixture
async def platform(db_path: Path, clock: ManualClock) -> AsyncIterator[Platform]:
    # Logging does not depend on the store: SQLite only, so that no test here is skipped for want of PostgreSQL.
    async with Platform.open(f"sqlite:///{db_path}", clock=clock, sweep_interval=None) as p:
        yield p


async def test_an_async_handler_s_lines_carry_its_job_attempt_agent_and_event(platform: Platform,
                                                                            json_logs: Captured) -> None:
    listener = Listener()
    seen: list[Event] = []
    done = anyio.Event()

    @listener.on("job:ready", job="workbook:export")
    async def export(event: Event) -> None:
        log.info("Exporting %d rows", 12, extra={"rows": 12, "sheet": "contacts"})
        seen.append(event)
        done.set()

    async with platform.running(listener, agent="exporter"):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        with anyio.fail_after(5):
            await done.wait()
    [line] = json_logs.json("listener.test_logs")
    assert line["message"] == "Exporting 12 rows" and line["level"] == "INFO"
    assert (line["jobId"], line["attempt"], line["job"]) == (job.id, 1, "workbook:export")
    assert (line["agent"], line["topic"], line["eventId"]) == ("exporter", "job:ready", seen[0].id)
    assert (line["rows"], line["sheet"]) == (12, "contacts")
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert "exc" not in line


async def test_a_sync_handler_in_a_worker_thread_logs_with_its_job(platform: Platform, json_logs: Captured) -> None:
    listener = Listener()
    threads: list[threading.Thread] = []
    done = anyio.Event()

    @listener.on("job:ready")
    def export(event: Event) -> None:  # sync: runs in a worker thread
        threads.append(threading.current_thread())
        log.warning("From a thread")
        event.after_all(done.set)

    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        with anyio.fail_after(5):
            await done.wait()
    assert threads and threads[0] is not threading.main_thread()
    [line] = json_logs.json("listener.test_logs")
    assert (line["message"], line["jobId"], line["attempt"], line["agent"]) == ("From a thread", job.id, 1,
                                                                                 "default")


async def test_anyio_worker_threads_and_child_tasks_see_the_log_context() -> None:
    def in_thread() -> dict[str, Any]:
        return dict(current_context())

    in_a_task: list[dict[str, Any]] = []

    async def task() -> None:
        in_a_task.append(await anyio.to_thread.run_sync(in_thread))

    with log_context(job_id="jb_1", attempt=2):
        in_a_thread = await anyio.to_thread.run_sync(in_thread)
        async with anyio.create_task_group() as tg:
            tg.start_soon(task)
    assert in_a_thread == {"jobId": "jb_1", "attempt": 2}
    assert in_a_task == [{"jobId": "jb_1", "attempt": 2}]
    assert dict(current_context()) == {}, "reset on exit"


async def test_a_failing_job_handler_job_logs_its_exception_with_each_attempt(platform: Platform, clock: ManualClock,
                                                                             json_logs: Captured) -> None:
    async def geocode(event: Event, tick: Tick) -> None:
        raise RuntimeError(f"Geocoder unavailable (attempt {event.cache['job'].attempt})")

    policy = RetryPolicy(max_attempts=2, base_seconds=1, jitter=0)
    listener = Listener("geocoder").use(job_handler("workbook:geocode", geocode, retry=policy))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="geocode")
        await until(platform, job.id, JobStatus.SCHEDULED)
        clock.advance(1)
        await platform.scheduler.sweep()
        job = await platform.api.jobs.wait(job.id, timeout=5)
    assert (job.status, job.attempt) == (JobStatus.FAILED, 2)
    failures = json_logs.json("listener.job_handler")
    assert [line["attempt"] for line in failures] == [1, 2]
    for n, line in enumerate(failures, start=1):
        assert line["level"] == "ERROR" and line["message"] == f"Job {job.id} (workbook:geocode) failed on attempt {n}"
        assert (line["jobId"], line["job"], line["agent"], line["topic"]) == (job.id, "workbook:geocode", "geocoder",
                                                                              "job:ready")
        assert line["exc"].startswith("Traceback")
        assert f"RuntimeError: Geocoder unavailable (attempt {n})" in line["exc"]


async def test_concurrent_jobs_keep_their_own_fields_and_lines_outside_a_job_have_none(platform: Platform,
                                                                                      json_logs: Captured) -> None:
    listener = Listener()
    both_started, both_ended = anyio.Event(), anyio.Event()
    started: list[str] = []
    ended: list[str] = []

    @listener.on("job:ready")
    async def export(event: Event) -> None:
        log.info("start %s", event.context.job_id)
        started.append(event.context.job_id or "")
        if len(started) == 2:
            both_started.set()
        await both_started.wait()  # each handler's second line comes after the other one has started
        log.info("end %s", event.context.job_id)
        ended.append(event.context.job_id or "")
        if len(ended) == 2:
            both_ended.set()

    log.info("before")
    async with platform.running(listener):
        ids = [(await platform.api.jobs.create(type="workbook", operation="export")).id for _ in range(2)]
        with anyio.fail_after(5):
            await both_ended.wait()
    log.info("after")
    lines = json_logs.json("listener.test_logs")
    assert sorted(line["message"] for line in lines) == sorted(["before", "after", *(f"{w} {i}" for i in ids
                                                                                      for w in ("start", "end"))])
    for line in lines:
        if line["message"] in ("before", "after"):
            assert not {"jobId", "attempt", "job", "topic", "eventId", "agent"} & line.keys(), line
        else:
            assert line["message"].endswith(" " + line["jobId"]), line


def test_extra_keys_appear_and_never_replace_the_line_s_own(json_logs: Captured) -> None:
    log.info("Imported", extra={"records": 3, "path": Path("/tmp/a.csv"), "level": "mine", "jobId": "jb_given"})
    [line] = json_logs.json("listener.test_logs")
    assert line["records"] == 3
    assert line["path"] == "/tmp/a.csv", "what JSON cannot encode is written as its str()"
    assert line["level"] == "INFO", "the caller's extra does not replace a key of the line"
    assert line["jobId"] == "jb_given", "an explicit jobId is kept outside a job"


def test_an_extra_json_cannot_encode_at_all_is_written_as_its_repr(json_logs: Captured) -> None:
    log.info("Grid", extra={"cells": {(0, 1): "a"}, "rows": 2})
    [line] = json_logs.json("listener.test_logs")
    assert (line["message"], line["cells"], line["rows"]) == ("Grid", "{(0, 1): 'a'}", 2)


def test_exceptions_outside_a_job_have_exc_and_no_job(json_logs: Captured) -> None:
    with log_context(job_id="jb_1", attempt=1):
        pass
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("Could not parse")
    [line] = json_logs.json("listener.test_logs")
    assert line["level"] == "ERROR" and "ValueError: bad value" in line["exc"]
    assert "jobId" not in line and "attempt" not in line


def test_nested_contexts_add_fields_and_restore_the_outer_ones(json_logs: Captured) -> None:
    with log_context(job_id="jb_1", job="workbook:export", topic="job:ready"):
        with log_context(attempt=3, topic=None):  # None keeps the outer value
            log.info("inner")
        log.info("outer")
    inner, outer = json_logs.json("listener.test_logs")
    assert (inner["jobId"], inner["attempt"], inner["topic"]) == ("jb_1", 3, "job:ready")
    assert outer["jobId"] == "jb_1" and "attempt" not in outer


def test_the_json_formatter_works_on_a_handler_without_the_filter() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    try:
        with log_context(job_id="jb_2", attempt=1):
            log.warning("no filter")
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert (line["jobId"], line["attempt"], line["message"]) == ("jb_2", 1, "no filter")


def test_the_filter_puts_the_fields_on_records_for_format_strings() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(jobId)s %(attempt)s %(message)s"))
    handler.addFilter(LogContextFilter())
    log.addHandler(handler)
    try:
        with log_context(job_id="jb_3", attempt=2):
            log.warning("in")
        log.warning("out")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["jb_3 2 in", "None None out"]


def test_the_text_format_shows_the_job_and_attempt(text_logs: Captured) -> None:
    log.info("outside")
    with log_context(job_id="jb_4", attempt=2, job="workbook:export"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("inside")
    with log_context(job_id="jb_5"):
        log.info("no attempt yet")
    lines = text_logs.lines()
    assert lines[0].endswith(" INFO listener.test_logs: outside")
    assert lines[1].endswith(" ERROR listener.test_logs: inside job=jb_4 attempt=2"), "before the traceback"
    assert lines[2] == "Traceback (most recent call last):"
    assert "RuntimeError: boom" in lines[-2]
    assert lines[-1].endswith(" INFO listener.test_logs: no attempt yet job=jb_5")


def test_configure_replaces_its_own_handler_and_refuses_an_unknown_format(json_logs: Captured) -> None:
    mine = [h for h in logging.getLogger().handlers if type(h).__module__ == "listener.logs"]
    assert len(mine) == 1
    with pytest.raises(ValueError, match="'text' or 'json', not 'xml'"):
        configure("xml")  # type: ignore[arg-type]
    assert [h for h in logging.getLogger().handlers if type(h).__module__ == "listener.logs"] == mine


def test_the_log_format_option_reads_its_env_var(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _parser().parse_args(["jobs", "list"]).log_format == "text"
    monkeypatch.setenv("LISTENER_LOG_FORMAT", "json")
    assert _parser().parse_args(["jobs", "list"]).log_format == "json"
    assert _parser().parse_args(["--log-format", "text", "jobs", "list"]).log_format == "text"
    monkeypatch.setenv("LISTENER_LOG_FORMAT", "yaml")
    with pytest.raises(SystemExit):
        _parser().parse_args(["jobs", "list"])
    assert "'yaml' is not a log format: text or json" in capsys.readouterr().err


FAILING = '''
from listener import Listener
from plugins.job_handler import job_handler

async def export(event, tick):
    raise RuntimeError("Export service down")

listener = Listener("dev-logger").use(job_handler("workbook:export", export))
'''


async def test_the_cli_writes_json_lines_with_the_job(tmp_path: Path) -> None:
    module = tmp_path / "failing.py"
    module.write_text(FAILING)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTENER_")}
    command = [sys.executable, "-m", "listener.cli", "--log-format", "json", "dev", str(module),
               "--db", f"sqlite:///{tmp_path / 'dev.db'}", "--port", "0"]
    async with await anyio.open_process(command, env={**env, "PYTHONUNBUFFERED": "1"}, stderr=-2) as process:
        try:
            out = Lines(process)
            token = (await out.wait_for(TOKEN)).group(1)
            url = next(m.group(1) for line in out.seen if (m := re.search(URL, line)))
            async with Client(url, token=token) as client:
                job = await client.jobs.create(type="workbook", operation="export")
                job = await client.jobs.wait(job.id, timeout=20)
            assert job.status is JobStatus.FAILED
            failed = json.loads((await out.wait_for(r'^\{.*"logger": "listener\.job_handler"')).string)
            process.send_signal(signal.SIGTERM)
            stopping = json.loads((await out.wait_for(r"^\{.*shutting down gracefully")).string)
            with anyio.fail_after(20):
                assert await process.wait() == 0, "\n".join(out.seen)
        finally:
            if process.returncode is None:
                process.kill()
    assert (failed["jobId"], failed["attempt"], failed["job"], failed["agent"]) == (job.id, 1, "workbook:export",
                                                                                   "dev-logger")
    assert "RuntimeError: Export service down" in failed["exc"]
    listening = [json.loads(line) for line in out.seen if line.startswith("{") and "Listening on" in line]
    assert len(listening) == 1 and "jobId" not in listening[0], out.seen
    assert stopping["level"] == "INFO" and "jobId" not in stopping
