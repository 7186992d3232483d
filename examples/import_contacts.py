"""File import: a voter file uploaded as CSV is imported into a sheet in batches, its broken rows reported.

Cocoa Canvas's voter import, as a file action: the uploaded file mounts an `import`
action; pressing it (`actions.trigger(file.id, "import", input={"sheetId": ...})`) starts
a `file:import` job whose source is the file. The handler reads the file as it streams,
inserts the good rows 100 at a time, saves a checkpoint after each batch (a retried
attempt resumes after the last one), logs every broken row to the job's error log, and
ends with the error report as a file to download next to the file it read.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from listener import Event, Listener, Outcome
from listener.api import Api
from listener.models import Model, RetryPolicy
from listener.platform.csvs import CsvRow, csv_rows
from plugins.job_handler import Tick, job_handler

NAMESPACE = "import-contacts"
"""The namespace of this story's space (the demo scopes each story's listener to its own)."""

BATCH_SIZE = 100
"""Rows inserted per commit, and per checkpoint."""

FIELDS = [
    {"key": "first_name", "label": "First name"},
    {"key": "last_name", "label": "Last name"},
    {"key": "email", "label": "Email"},
    {"key": "birth_year", "label": "Birth year", "type": "number"},
]

VOTERS_CSV = """\
first_name,last_name,email,birth_year
Ada,Lovelace,ada@example.com,1815
Charles,Babbage,charles@example.com,1791
Grace,Hopper,grace-at-example.com,1906
Alan,Turing,alan@example.com
Katherine,Johnson,katherine@example.com,19l8
Edsger,Dijkstra,edsger@example.com,1930
"Hamilton, Jr.",Margaret,margaret@example.com,1936
Barbara,Liskov,barbara@example.com,1939
"""
"""The voter file of the story: eight voters, three of them with something wrong."""


class ImportInput(Model):
    """What the Import button sends: the sheet the rows go to."""

    sheet_id: str = Field(min_length=1)


def check(row: CsvRow, header: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """A row's record, or why it cannot be imported."""
    if row.error is not None:
        return None, row.error
    if len(row.cells) != len(header):
        return None, f"has {len(row.cells)} cells; the header has {len(header)}."
    values: dict[str, Any] = dict(zip(header, (cell.strip() or None for cell in row.cells), strict=True))
    if not values.get("email") or "@" not in values["email"]:
        return None, f"{values.get('email') or 'an empty cell'!s} is not an email address."
    year = values.get("birth_year")
    if year is not None:
        if not (year.isdigit() and len(year) == 4):
            return None, f"birth_year {year!r} is not a year."
        values["birth_year"] = int(year)
    return values, None


async def import_contacts(event: Event, tick: Tick) -> Outcome:
    """Import the uploaded voter file into the sheet, a batch at a time, resuming from the last checkpoint."""
    api = event.api
    job_id, file_id = event.context.job_id, event.context.file_id
    assert job_id and file_id, "a file action's job names the job and its file"
    sheet_id = event.cache["input"].sheet_id
    file = await api.files.get(file_id)
    await api.jobs.attach_file(job_id, file_id, role="input")

    # Count the rows first, so that progress means something (and a huge file could be refused here).
    total = max(0, sum([1 async for _ in csv_rows(api.files.stream(file_id))]) - 1)  # less the header
    saved = event.cache["checkpoint"] or {}
    next_row, imported, failed = saved.get("next_row", 2), saved.get("imported", 0), saved.get("failed", 0)

    header: list[str] | None = None
    batch: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []

    async def flush(next_row: int) -> None:
        nonlocal imported, failed, batch, errors
        if batch:
            await api.records.insert(sheet_id, batch)
        if errors:
            await api.jobs.log_errors(job_id, errors)
        imported, failed = imported + len(batch), failed + len(errors)
        batch, errors = [], []
        await tick.checkpoint({"next_row": next_row, "imported": imported, "failed": failed})
        done = imported + failed
        await tick(min(99, done * 100 // max(total, 1)), f"Imported {imported} of {total} voters")

    last = next_row - 1
    async for row in csv_rows(api.files.stream(file_id)):
        if header is None:
            header = [cell.strip() for cell in row.cells]
            continue
        if row.number < next_row:
            continue  # done by an earlier attempt
        last = row.number
        values, problem = check(row, header)
        if values is not None:
            batch.append(values)
        else:
            errors.append({"item": f"row {row.number}", "message": f"Row {row.number}: {problem}"})
        if len(batch) + len(errors) >= BATCH_SIZE:
            await flush(last + 1)
    if batch or errors:
        await flush(last + 1)

    message = f"Imported {imported} of {total} voters from {file.name}."
    if not failed:
        return Outcome(message=message, acknowledge=True)
    # The error log as a file: what the person downloads, fixes and uploads again.
    report = await api.files.upload(await api.jobs.errors_csv(job_id), name="errors.csv", mime_type="text/csv",
                                    space_id=file.space_id)
    await api.jobs.attach_file(job_id, report.id, role="error_report")
    return Outcome(
        message=f"{message} {failed} {'row has' if failed == 1 else 'rows have'} errors: see errors.csv.",
        acknowledge=True,
        next={"type": "files", "files": [{"fileId": report.id}, {"fileId": file_id}],
              "label": "Download the error report"},
    )


def register(listener: Listener) -> None:
    """Handle the Import button of any uploaded file."""
    listener.use(job_handler("file:import", import_contacts, input=ImportInput,
                             retry=RetryPolicy(max_attempts=3, base_seconds=1)))


listener = Listener("import-contacts").use(register)


async def scenario(api: Api) -> list[str]:
    """Upload the voter file with an Import action, press it, and return the job's id."""
    space = await api.spaces.create(name="County voter file", namespace=NAMESPACE)
    workbook = await api.workbooks.create(name="Voters", space_id=space.id,
                                          sheets=[{"name": "Voters", "slug": "voters", "fields": FIELDS}])
    file = await api.files.upload(VOTERS_CSV.encode(), name="voters.csv", mime_type="text/csv", space_id=space.id,
                                  actions=[{"operation": "import", "label": "Import voters", "primary": True}])
    job = await api.actions.trigger(file.id, "import", input={"sheetId": workbook.sheets[0].id})
    return [job.id]


if __name__ == "__main__":
    from listener.demo import run_example

    run_example(listener, scenario)
