"""Action-based job: an Export button on a workbook writes its Contacts sheet to a CSV file.

The workbook mounts an `export` action. Pressing it creates the job
`workbook:export` and fires `job:ready`; this listener then walks the job
through its whole lifecycle by hand: ack, update, and complete with a download
button, or fail. The CSV is uploaded as a platform file and attached to the job
as its output, so the button downloads it from the platform, wherever the
listener ran.

    python examples/action_export.py                   # in-process, on ./.listener/listener.db
    python examples/action_export.py --url http://127.0.0.1:8080 --token $TOKEN   # press Export on a server
"""

from __future__ import annotations

import csv
import io

from listener import Conflict, Event, Listener, Outcome
from listener.api import Api
from listener.models import Record
from listener.platform.csvs import safe_cell

NAMESPACE = "export"
"""The namespace of this story's space (the demo scopes each story's listener to its own)."""


async def export(event: Event) -> None:
    """Export the workbook's first sheet to CSV and offer it for download."""
    job_id, workbook_id = event.context.job_id, event.context.workbook_id
    assert job_id, "job:ready names its job"
    try:
        await event.api.jobs.ack(job_id, info="Starting submit job...", progress=10)
    except Conflict:
        return  # another worker took this job first, or it was cancelled: not ours to run

    try:
        if workbook_id is None:
            raise ValueError("There is no workbook to export: the job's source must be a workbook.")
        workbook = await event.api.workbooks.get(workbook_id)
        if not workbook.sheets:
            raise ValueError(f"The workbook {workbook.name} has no sheet to export.")
        sheet = workbook.sheets[0]
        records = await read_records(event.api, sheet.id)
        await event.api.jobs.update(job_id, progress=50, info=f"Read {len(records)} records")

        data = to_csv([f.key for f in sheet.fields], records)
        file = await event.api.files.upload(data, name=f"{workbook.name} - {sheet.name}.csv", mime_type="text/csv",
                                            space_id=workbook.space_id)
        await event.api.jobs.update(job_id, progress=90, info=f"Uploaded {file.name}")
        # Attached as the job's output: whoever pressed Export may download it.
        await event.api.jobs.attach_file(job_id, file.id, role="output")

        await event.api.jobs.complete(job_id, outcome=Outcome(
            acknowledge=True,
            message=f"Exported {len(records)} records.",
            next={"type": "download", "url": f"/api/v1/files/{file.id}/content", "file_name": file.name,
                  "label": "Download this file"},
        ))
    except Exception as exc:
        # The person sees the outcome; the reason is kept on the job for whoever investigates.
        await event.api.jobs.fail(job_id, outcome=Outcome(message="This Job failed.", acknowledge=True),
                                  error=str(exc) or type(exc).__name__)


async def read_records(api: Api, sheet_id: str) -> list[Record]:
    """Every record of a sheet, one page at a time."""
    records: list[Record] = []
    while True:
        page = await api.records.get(sheet_id, offset=len(records))
        records.extend(page.items)
        if not page.items or len(records) >= page.total:
            return records


def to_csv(columns: list[str], records: list[Record]) -> bytes:
    """Records as CSV, one column per field; cells a spreadsheet would run as a formula are defused."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows([safe_cell(record.values.get(column)) for column in columns] for record in records)
    return text.getvalue().encode()


def register(listener: Listener) -> None:
    """Handle the Export button of any workbook."""
    listener.on("job:ready", {"job": "workbook:export"}, export)


listener = Listener("action-export").use(register)

CONTACTS = [
    {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": "Analytical Engines"},
    {"first_name": "Charles", "last_name": "Babbage", "email": "charles@example.com", "company": "Babbage, Ltd."},
    {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com", "company": 'The "Bug" Hunters'},
]


async def scenario(api: Api) -> list[str]:
    """Create the October Report Workbook with a few contacts, press Export, and return the job's id."""
    space = await api.spaces.create(name="October reports", namespace=NAMESPACE)
    workbook = await api.workbooks.create(
        name="October Report Workbook",
        space_id=space.id,
        sheets=[{"name": "Contacts", "slug": "contacts",
                 "fields": [{"key": "first_name"}, {"key": "last_name"}, {"key": "email"}, {"key": "company"}]}],
        actions=[{"operation": "export", "label": "Export Data", "description": "Send data to destination system",
                  "mode": "foreground", "primary": True}],
    )
    await api.records.insert(workbook.sheets[0].id, CONTACTS)
    job = await api.actions.trigger(workbook.id, "export")
    return [job.id]


if __name__ == "__main__":
    from listener.demo import run_example

    run_example(listener, scenario)
