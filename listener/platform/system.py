"""System jobs: work the platform does itself, as jobs like any other (`managed: true`, as Flatfile's).

```python
job = await api.jobs.create(type="sheet", operation="export", source=sheet.id, managed=True)
job = await api.jobs.wait(job.id, timeout=60)        # job.outcome.next: a download of the CSV
```

| job | source | input | does |
| --- | --- | --- | --- |
| `file:extract` | a CSV file (UTF-8, a header row) | `{"sheetId"}` | inserts its rows into the sheet |
| `sheet:export` | a sheet | | writes its records to a new CSV file |
| `sheet:deleteRecords` | a sheet | `{"ids"}` (optional: all) | deletes records |
| `sheet:findReplace` | a sheet | `{"fieldKey", "find", "replace"}` | replaces text in one field |

They go through the same lifecycle and emit the same events (job:created ... job:completed, with
`managed: true` in the payload), so listeners can watch and react to them. Every platform replica
runs the `system` agent (`Platform.open(system_jobs=True)`, the default); the ack makes each job run
once. A system job works in batches, reports items processed of the total, saves a checkpoint after
each batch (a retried attempt resumes after the last one: a crash between a batch's write and its
checkpoint repeats that one batch) and is retried twice on unexpected errors. A job whose items (rows
of the file, records of the sheet) exceed the platform's `max_items` fails before changing anything.

The agent keeps no cursor: it takes job:ready events live and, when it starts, the managed jobs
already ready (made ready while no replica ran).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import Field

from listener.api import Api
from listener.errors import Invalid, NonRetryable, NotFound
from listener.listener import Listener
from listener.models import Event, File, Job, Model, Outcome, RetryPolicy, Sheet, SheetField
from listener.platform.csvs import csv_chunks, csv_rows
from listener.platform.ready_queue import announce_for
from listener.runner import Runner
from listener.tasks import task_scope
from plugins.job_handler import Tick, job_handler

if TYPE_CHECKING:
    from listener.platform import Platform, PlatformApi

__all__ = [
    "AGENT",
    "BATCH_SIZE",
    "DEFAULT_MAX_ITEMS",
    "RETRY",
    "SYSTEM_JOBS",
    "DeleteRecordsInput",
    "ExtractInput",
    "FindReplaceInput",
    "running",
    "system_listener",
]

AGENT = "system"
"""The agent that runs system jobs; its writes are recorded as `agent:system`."""

SYSTEM_JOBS = ("file:extract", "sheet:export", "sheet:deleteRecords", "sheet:findReplace")

DEFAULT_MAX_ITEMS = 100_000
"""The most items (rows, records) one system job may process, as Cocoa Canvas's limit."""

BATCH_SIZE = 500
"""Rows or records per write, per checkpoint and per progress report."""

RETRY = RetryPolicy(max_attempts=3, base_seconds=2, factor=4)
"""Unexpected errors (a lost database connection) are retried; bad input and limits are not."""

MAX_ERRORS_PER_CALL = 500  # what jobs.log_errors takes at once
_MAX_MESSAGE = 2_000


class ExtractInput(Model):
    """The input of `file:extract`: the sheet the rows go to."""

    sheet_id: str = Field(min_length=1)


class DeleteRecordsInput(Model):
    """The input of `sheet:deleteRecords`: the records to delete (every record of the sheet when left out)."""

    ids: list[str] | None = None


class FindReplaceInput(Model):
    """The input of `sheet:findReplace`: in the text values of `field_key`, replace `find` by `replace`."""

    field_key: str = Field(min_length=1)
    find: str = Field(min_length=1)
    replace: str


# -- the agent --------------------------------------------------------------------------


def system_listener(api: PlatformApi, *, max_items: int = DEFAULT_MAX_ITEMS) -> Listener:
    """The `system` listener: a job_handler for each system job, on managed jobs only.

    `api` is the platform's; an export's file is uploaded as the person who started the job, so
    that they may download it.
    """
    if max_items < 1:
        raise Invalid(f"max_items: must be at least 1, not {max_items}.",
                      details=[{"field": "max_items", "message": "too small"}])
    jobs = _SystemJobs(api, max_items)
    listener = Listener(AGENT)
    managed = {"managed": True}
    listener.use(job_handler("file:extract", jobs.extract, input=ExtractInput, retry=RETRY, filter=managed))
    listener.use(job_handler("sheet:export", jobs.export, retry=RETRY, filter=managed))
    listener.use(job_handler("sheet:deleteRecords", jobs.delete_records, input=DeleteRecordsInput, retry=RETRY,
                             filter=managed))
    listener.use(job_handler("sheet:findReplace", jobs.find_replace, input=FindReplaceInput, retry=RETRY,
                             filter=managed))
    return listener


@asynccontextmanager
async def running(platform: Platform, *, max_items: int = DEFAULT_MAX_ITEMS, concurrency: int = 10,
                  grace: float = 5.0) -> AsyncIterator[Runner]:
    """Run the system agent on `platform` while the block runs (Platform.open does).

    Like `Platform.running`, but without a stored cursor: it takes the events from now on, and first
    the managed jobs that are ready already. (A job it stops in the middle at shutdown keeps its lease
    until it runs out, then is retried under RETRY and resumes from its checkpoint.)
    """
    listener = system_listener(platform.api, max_items=max_items)
    runner = Runner(listener, platform.api.as_actor(f"agent:{AGENT}"), concurrency=concurrency, grace=grace,
                    agent=AGENT)
    start = await platform.store.head()
    async with platform.eventlog.subscribe(start) as live, task_scope(cancel_on_exit=False) as tg:
        await tg.start(_run, runner, live, start)
        # Subscribed first: a job made ready from now on comes live; one ready before is announced again.
        announce_for(tg, platform.api.as_actor(f"agent:{AGENT}").jobs, listener, start)
        worker = platform.listening(listener, runner, cursor=None)
        try:
            yield runner
        finally:
            platform.workers.remove(worker)
            runner.stop()


async def _run(runner: Runner, events: AsyncIterator[Event], start: int, *,
               task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    await runner.run(events, task_status=task_status, start=start)


# -- the jobs ---------------------------------------------------------------------------


class _SystemJobs:
    def __init__(self, api: PlatformApi, max_items: int) -> None:
        self.api = api
        self.max_items = max_items

    def _within_limit(self, count: int, what: str, unit: str) -> None:
        if count > self.max_items:
            raise NonRetryable(f"{what} has {count:,} {unit}; a job may process at most {self.max_items:,}.",
                               details={"count": count, "maxItems": self.max_items})

    # -- file:extract -------------------------------------------------------------------

    async def extract(self, event: Event, tick: Tick) -> Outcome:
        """Insert the rows of a CSV file into a sheet, in batches; broken rows go to the error log."""
        api, job = event.api, _job(event)
        params: ExtractInput = event.cache["input"]
        file = await _file(api, job)
        sheet = await _sheet(api, params.sheet_id, "sheetId")

        header, total = await _survey(api, file)
        self._within_limit(total, f"The file {file.name}", "rows")
        columns, ignored = _map_columns(header.cells, sheet)
        if not columns:
            fields = ", ".join(f.key for f in sheet.fields)
            raise NonRetryable(f"None of the columns of {file.name} ({', '.join(header.cells)}) is a field of sheet "
                               f"{sheet.slug!r} (its fields: {fields}).")

        state = dict(event.cache["checkpoint"] or {})
        if not state:  # a first attempt: say once which columns are left out
            await _log(api, job, ignored)
            state = {"next_row": header.number + 1, "imported": 0, "failed": 0, "done": 0}
            await tick.checkpoint(state)
        next_row: int = state["next_row"]
        imported: int = state["imported"]
        failed: int = state["failed"]
        done: int = state["done"]

        good: list[tuple[int, dict[str, Any]]] = []
        bad: list[tuple[int, str]] = []

        async def flush(next_row: int) -> None:
            nonlocal imported, failed, done, good, bad
            refused = await _insert(api, sheet, good)
            bad = sorted(bad + refused)
            await _log(api, job, [(f"row {number}", f"Row {number}: {message}") for number, message in bad])
            done += len(good) + len(bad) - len(refused)
            imported += len(good) - len(refused)
            failed += len(bad)
            good, bad = [], []
            await tick.checkpoint({"next_row": next_row, "imported": imported, "failed": failed, "done": done})
            await _progress(api, job, done, total, f"Read {done:,} of {total:,} rows")

        last = next_row - 1
        async for row in csv_rows(api.files.stream(file.id)):
            if row.number < next_row:
                continue
            last = row.number
            if row.error is not None:
                bad.append((row.number, row.error))
            else:
                values, problem = _row_values(row.cells, header.cells, columns)
                if problem is not None:
                    bad.append((row.number, problem))
                else:
                    good.append((row.number, values))
            if len(good) + len(bad) >= BATCH_SIZE:
                await flush(last + 1)
        if good or bad:
            await flush(last + 1)

        message = f"Imported {imported:,} of {total:,} rows"
        message += f"; {failed:,} {'row' if failed == 1 else 'rows'} had errors." if failed else "."
        if ignored:
            message += (f" Ignored {len(ignored)} {'column' if len(ignored) == 1 else 'columns'} "
                        f"(see the error log).")
        return Outcome(message=message)

    # -- sheet:export -------------------------------------------------------------------

    async def export(self, event: Event, tick: Tick) -> Outcome:
        """Write a sheet's records to a new CSV file (formulas defused) and offer it for download."""
        api, job = event.api, _job(event)
        sheet = await _sheet(api, _source(job), "source")
        total = (await api.records.get(sheet.id, limit=1)).total
        self._within_limit(total, f"Sheet {sheet.name}", "records")
        keys = [f.key for f in sheet.fields] or await _keys_in_use(api, sheet.id)
        exported = 0

        async def rows() -> AsyncIterator[list[Any]]:
            nonlocal exported
            async for page in _pages(api, sheet.id, total):
                for record in page:
                    yield [record.values.get(key) for key in keys]
                exported += len(page)
                await _progress(api, job, exported, total, f"Wrote {exported:,} of {total:,} records")

        workbook = await api.workbooks.get(sheet.workbook_id)
        # The file is the starter's: a member may download what their export made.
        owner = self.api.as_actor(job.created_by)
        file = await owner.files.upload(csv_chunks(keys, rows()), name=f"{sheet.name}.csv", mime_type="text/csv",
                                        space_id=workbook.space_id)
        await api.jobs.attach_file(job.id, file.id, role="output")
        return Outcome(
            message=f"Exported {exported:,} {'record' if exported == 1 else 'records'} of {sheet.name} to {file.name}.",
            next={"type": "download", "url": f"/api/v1/files/{file.id}/content", "file_name": file.name,
                  "label": "Download CSV"})

    # -- sheet:deleteRecords ------------------------------------------------------------

    async def delete_records(self, event: Event, tick: Tick) -> Outcome:
        """Delete the given records (or all of them) in batches."""
        api, job = event.api, _job(event)
        params: DeleteRecordsInput = event.cache["input"]
        sheet = await _sheet(api, _source(job), "source")
        state = dict(event.cache["checkpoint"] or {})
        deleted: int = state.get("deleted", 0)
        if params.ids is not None:
            ids = list(dict.fromkeys(params.ids))
            total = len(ids)
            self._within_limit(total, "The job", "record ids")
            missing: int = state.get("missing", 0)
            for start in range(state.get("next", 0), total, BATCH_SIZE):
                batch = ids[start:start + BATCH_SIZE]
                gone, absent = await _delete(api, sheet.id, batch)
                await _log(api, job, [(f"record {i}", f"Record {i} is not in sheet {sheet.slug!r}.") for i in absent])
                deleted, missing = deleted + gone, missing + len(absent)
                await tick.checkpoint({"next": start + len(batch), "deleted": deleted, "missing": missing})
                await _progress(api, job, start + len(batch), total, f"Deleted {deleted:,} of {total:,} records")
            message = f"Deleted {deleted:,} of {total:,} records"
            message += f"; {missing:,} {'was' if missing == 1 else 'were'} not in the sheet." if missing else "."
            return Outcome(message=message)

        remaining = (await api.records.get(sheet.id, limit=1)).total
        total = deleted + remaining
        self._within_limit(total, f"Sheet {sheet.name}", "records")
        # Only as many as the sheet had when the job started: records added meanwhile stay.
        while deleted < total:
            page = await api.records.get(sheet.id, limit=min(BATCH_SIZE, total - deleted), offset=0)
            if not page.items:
                break
            gone, _ = await _delete(api, sheet.id, [r.id for r in page.items])
            deleted += gone
            await tick.checkpoint({"deleted": deleted})
            await _progress(api, job, deleted, total, f"Deleted {deleted:,} of {total:,} records")
        return Outcome(message=f"Deleted {deleted:,} {'record' if deleted == 1 else 'records'} of {sheet.name}.")

    # -- sheet:findReplace --------------------------------------------------------------

    async def find_replace(self, event: Event, tick: Tick) -> Outcome:
        """Replace text in one field of every record, in batches; says how many records changed."""
        api, job = event.api, _job(event)
        params: FindReplaceInput = event.cache["input"]
        sheet = await _sheet(api, _source(job), "source")
        key = params.field_key
        if sheet.fields and key not in {f.key for f in sheet.fields}:
            raise NonRetryable(f"fieldKey: sheet {sheet.slug!r} has no field {key!r} "
                               f"(its fields: {', '.join(f.key for f in sheet.fields)}).")
        total = (await api.records.get(sheet.id, limit=1)).total
        self._within_limit(total, f"Sheet {sheet.name}", "records")
        state = dict(event.cache["checkpoint"] or {})
        offset: int = state.get("offset", 0)
        changed: int = state.get("changed", 0)
        while offset < total:
            page = await api.records.get(sheet.id, limit=BATCH_SIZE, offset=offset)
            if not page.items:
                break
            updates = [{"id": r.id, "values": {key: value.replace(params.find, params.replace)}}
                       for r in page.items if isinstance(value := r.values.get(key), str) and params.find in value]
            if updates:
                await api.records.update(sheet.id, updates)
            offset += len(page.items)
            changed += len(updates)
            await tick.checkpoint({"offset": offset, "changed": changed})
            searched = min(offset, total)
            await _progress(api, job, searched, total, f"Searched {searched:,} of {total:,} records")
        return Outcome(message=f"Replaced {params.find!r} with {params.replace!r} in {key!r}: "
                               f"{changed:,} of {total:,} {'record' if total == 1 else 'records'} changed.")


# -- helpers ------------------------------------------------------------------------------


def _job(event: Event) -> Job:
    job: Job = event.cache["job"]
    return job


def _source(job: Job) -> str:
    if not job.source:
        raise NonRetryable(f"source: a {job.job} job needs the {job.type} it works on as its source.")
    return job.source


async def _file(api: Api, job: Job) -> File:
    try:
        return await api.files.get(_source(job))
    except NotFound:
        raise NonRetryable(f"source: file {job.source} does not exist.") from None


async def _sheet(api: Api, sheet_id: str, field: str) -> Sheet:
    try:
        return await api.sheets.get(sheet_id)
    except NotFound:
        raise NonRetryable(f"{field}: sheet {sheet_id} does not exist.") from None


async def _progress(api: Api, job: Job, done: int, total: int, info: str) -> None:
    """Items processed of the total (progress and the estimated completion follow): the job's tick."""
    await api.jobs.update(job.id, processed=done, total=total, info=info, attempt=job.attempt)


async def _log(api: Api, job: Job, entries: Sequence[tuple[str, str]]) -> None:
    errors = [{"item": item, "message": _short(message)} for item, message in entries]
    for start in range(0, len(errors), MAX_ERRORS_PER_CALL):
        await api.jobs.log_errors(job.id, errors[start:start + MAX_ERRORS_PER_CALL])


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE - 1] + "…"


async def _pages(api: Api, sheet_id: str, total: int) -> AsyncIterator[list[Any]]:
    """A sheet's records a batch at a time, in insertion order (at most `total`: those it had at the start)."""
    offset = 0
    while offset < total:
        page = await api.records.get(sheet_id, limit=min(BATCH_SIZE, total - offset), offset=offset)
        if not page.items:
            return
        yield page.items
        offset += len(page.items)


async def _keys_in_use(api: Api, sheet_id: str) -> list[str]:
    """The columns of a sheet without fields: every key its records use, in the order first seen."""
    keys: dict[str, None] = {}
    total = (await api.records.get(sheet_id, limit=1)).total
    async for page in _pages(api, sheet_id, total):
        for record in page:
            keys.update(dict.fromkeys(record.values))
    return list(keys)


async def _delete(api: Api, sheet_id: str, ids: list[str]) -> tuple[int, list[str]]:
    """Delete records in one commit; if some are not there, the others one by one. (deleted, not found)"""
    try:
        await api.records.delete(sheet_id, ids)
        return len(ids), []
    except NotFound:
        pass
    absent: list[str] = []
    for record_id in ids:
        try:
            await api.records.delete(sheet_id, [record_id])
        except NotFound:
            absent.append(record_id)
    return len(ids) - len(absent), absent


# -- reading a CSV into a sheet ------------------------------------------------------------


class _Header:
    def __init__(self, number: int, cells: list[str]) -> None:
        self.number, self.cells = number, cells


async def _survey(api: Api, file: File) -> tuple[_Header, int]:
    """The header and the number of rows after it, read before anything is written."""
    header: _Header | None = None
    rows = 0
    try:
        async for row in csv_rows(api.files.stream(file.id)):
            if header is None:
                if row.error is not None:
                    raise NonRetryable(f"The header row of {file.name} is not valid CSV: {row.error}")
                header = _Header(row.number, [cell.strip() for cell in row.cells])
            else:
                rows += 1
    except Invalid as exc:
        raise NonRetryable(f"{file.name}: {exc.message}") from None
    except NotFound:
        raise NonRetryable(f"source: file {file.id} does not exist.") from None
    if header is None:
        raise NonRetryable(f"The file {file.name} is empty: a CSV file to extract starts with a header row.")
    return header, rows


Column = tuple[int, str, str]  # (position in the row, field key, field type)


def _map_columns(header: list[str], sheet: Sheet) -> tuple[list[Column], list[tuple[str, str]]]:
    """Which column goes to which field (by key, else by label, case-insensitively), and why others do not."""
    fields: list[SheetField] = list(sheet.fields)
    by_name: dict[str, SheetField] = {}
    for f in fields:  # an exact key first, then a key or a label in any case
        by_name.setdefault(f.key, f)
    for f in fields:
        by_name.setdefault(f.key.casefold(), f)
        if f.label:
            by_name.setdefault(f.label.strip().casefold(), f)
    columns: list[Column] = []
    ignored: list[tuple[str, str]] = []  # (item, message) for the error log
    taken: dict[str, str] = {}
    for position, name in enumerate(header):
        label = f"Column {position + 1}" + (f" ({name!r})" if name else "")
        item = f"column {position + 1}"
        if not name:
            ignored.append((item, f"{label} has no name in the header row; its cells were not imported."))
            continue
        if fields:
            field = by_name.get(name) or by_name.get(name.casefold())
            if field is None:
                ignored.append((item, f"{label} is not a field of sheet {sheet.slug!r} (its fields: "
                                      f"{', '.join(f.key for f in fields)}); its cells were not imported."))
                continue
            key, kind = field.key, field.type
        else:
            key, kind = name, "string"  # a sheet without fields takes any column as it is named
        if key in taken:
            ignored.append((item, f"{label} is field {key!r} again (after {taken[key]!r}); its cells were not "
                                  "imported."))
            continue
        taken[key] = name
        columns.append((position, key, kind))
    return columns, ignored


_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _row_values(cells: list[str], header: list[str], columns: list[Column]) -> tuple[dict[str, Any], str | None]:
    """A row's values for the sheet, or what is wrong with it (every problem, in one message)."""
    if len(cells) != len(header):
        return {}, f"has {len(cells)} {'cell' if len(cells) == 1 else 'cells'}; the header has {len(header)}."
    values: dict[str, Any] = {}
    problems: list[str] = []
    for position, key, kind in columns:
        text = cells[position]
        if "\x00" in text:
            problems.append(f"{key}: contains the NUL character")
            continue
        value, problem = _convert(text, kind)
        if problem is not None:
            problems.append(f"{key}: {problem}")
        else:
            values[key] = value
    if problems:
        return {}, "; ".join(problems) + "."
    return values, None


def _convert(text: str, kind: str) -> tuple[Any, str | None]:
    """A cell's text as a value of the field's type (an empty cell is null)."""
    stripped = text.strip()
    if kind == "number":
        if not stripped:
            return None, None
        if _INTEGER.fullmatch(stripped):
            return int(stripped), None
        try:
            number = float(stripped)
        except ValueError:
            return None, f"{_quote(text)} is not a number"
        if not math.isfinite(number):
            return None, f"{_quote(text)} is not a finite number"
        return number, None
    if kind == "boolean":
        if not stripped:
            return None, None
        folded = stripped.casefold()
        if folded in _TRUE:
            return True, None
        if folded in _FALSE:
            return False, None
        return None, f"{_quote(text)} is not true or false"
    return (text if text else None), None


def _quote(text: str) -> str:
    return repr(text if len(text) <= 50 else text[:49] + "…")


async def _insert(api: Api, sheet: Sheet, rows: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
    """Insert rows in one commit; if the sheet refuses one, the others one by one. Returns those refused."""
    if not rows:
        return []
    try:
        await api.records.insert(sheet.id, [values for _, values in rows])
        return []
    except Invalid:
        pass
    refused: list[tuple[int, str]] = []
    for number, values in rows:
        try:
            await api.records.insert(sheet.id, [values])
        except Invalid as exc:
            refused.append((number, exc.message))
    return refused
