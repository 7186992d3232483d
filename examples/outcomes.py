"""Job outcomes: one action per kind of `next` button a finished job can offer.

Each action is mounted on a Contacts sheet. Most are handled with `job_handler`,
which acks the job, runs the function and completes the job with the Outcome it
returns. `publish` shows the `retry` button: it fails while the sheet is empty,
with an outcome that offers to try again once there is something to publish.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from listener import Conflict, Event, Listener, Outcome
from listener.api import Api
from listener.models import File
from listener.platform.csvs import safe_cell
from plugins.job_handler import Tick, job_handler

NAMESPACE = "outcomes"
"""The namespace of this story's space (the demo scopes each story's listener to its own)."""


def _sheet_id(event: Event) -> str:
    assert event.context.sheet_id, "a sheet action's job names its sheet"
    return event.context.sheet_id


async def open_downloads(event: Event, tick: Tick) -> Outcome:
    """`id`: a button to a place in the app, here the files of the job's space."""
    return Outcome(
        message="Your exports are in this space's files.",
        acknowledge=True,
        next={"type": "id", "id": event.context.space_id, "path": "files", "query": "mode=export",
              "label": "See all downloads"},
    )


async def open_guide(event: Event, tick: Tick) -> Outcome:
    """`url`: a button that opens a link in a new tab."""
    return Outcome(
        message="The jobs guide explains every kind of outcome.",
        acknowledge=True,
        next={"type": "url", "url": "https://flatfile.com/docs/core-concepts/jobs", "label": "Read the guide"},
    )


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> bytes:
    """Rows as CSV under a header of `columns`; cells a spreadsheet would run as a formula are defused."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows([safe_cell(row.get(column)) for column in columns] for row in rows)
    return text.getvalue().encode()


async def _output(event: Event, data: bytes, name: str, mime_type: str) -> File:
    """Upload `data` as a platform file in the job's space and attach it as the job's output.

    Attached, it may be downloaded by whoever started the job, wherever this listener runs.
    """
    assert event.context.job_id, "job:ready names its job"
    file = await event.api.files.upload(data, name=name, mime_type=mime_type, space_id=event.context.space_id)
    await event.api.jobs.attach_file(event.context.job_id, file.id, role="output")
    return file


async def download_template(event: Event, tick: Tick) -> Outcome:
    """`download`: an empty CSV with the sheet's columns, stored on the platform, offered for download."""
    sheet = await event.api.sheets.get(_sheet_id(event))
    template = await _output(event, _csv([field.key for field in sheet.fields], []), f"{sheet.name} template.csv",
                             "text/csv")
    return Outcome(
        message=f"The template has {len(sheet.fields)} columns.",
        acknowledge=True,
        next={"type": "download", "url": f"/api/v1/files/{template.id}/content", "file_name": template.name,
              "label": "Download template"},
    )


async def download_files(event: Event, tick: Tick) -> Outcome:
    """`files`: a button that downloads several files stored on the platform: the contacts as CSV and as JSON."""
    sheet = await event.api.sheets.get(_sheet_id(event))
    contacts = [record.values for record in (await event.api.records.get(sheet.id)).items]
    files = [
        await _output(event, _csv([field.key for field in sheet.fields], contacts), f"{sheet.name}.csv", "text/csv"),
        await _output(event, json.dumps(contacts, indent=2).encode(), f"{sheet.name}.json", "application/json"),
    ]
    return Outcome(
        message=f"The {len(contacts)} contacts should download automatically, as CSV and as JSON.",
        next={"type": "files", "label": "Download files", "files": [{"file_id": file.id} for file in files]},
    )


async def open_snapshot(event: Event, tick: Tick) -> Outcome:
    """`snapshot`: save the sheet as it is now and offer a button to that snapshot.

    Its page shows what changes in the sheet from then on, and can restore it.
    """
    sheet_id = _sheet_id(event)
    snapshot = await event.api.snapshots.create(sheet_id, label="Before review")
    return Outcome(
        message=f"Saved the {snapshot.summary.records} contacts as they are: compare them with the sheet later, "
                "or restore them.",
        acknowledge=True,
        next={"type": "snapshot", "label": "Go to Snapshot", "snapshot_id": snapshot.id, "sheet_id": sheet_id},
    )


async def hide_empty_columns(event: Event, tick: Tick) -> Outcome:
    """`view`: show the sheet with the columns that have no values hidden."""
    sheet = await event.api.sheets.get(_sheet_id(event))
    records = (await event.api.records.get(sheet.id)).items
    empty = [field.key for field in sheet.fields if not any(record.values.get(field.key) for record in records)]
    return Outcome(
        message=f"Hid {len(empty)} empty columns on {sheet.name}.",
        acknowledge=True,
        next={"type": "view", "label": "Hide columns", "sheet_id": sheet.id, "hidden_columns": empty},
    )


async def finish_review(event: Event, tick: Tick) -> Outcome:
    """`wait`: no button; the dialog stays open, with confetti."""
    records = (await event.api.records.get(_sheet_id(event))).items
    return Outcome(
        message=f"Reviewed all {len(records)} contacts. Nice work!",
        acknowledge=True,
        next={"type": "wait", "confetti": True},
    )


async def show_all(event: Event, tick: Tick) -> Outcome:
    """`clear_filters`: clear the filters of the sheet's view."""
    return Outcome(
        message="Showing every contact again.",
        next={"type": "clear_filters", "sheet_id": event.context.sheet_id, "label": "Show all"},
    )


async def publish(event: Event) -> None:
    """`retry`: fail with a Try again button while the sheet is empty; publish once it has contacts."""
    job_id, sheet_id = event.context.job_id, _sheet_id(event)
    assert job_id, "job:ready names its job"
    try:
        await event.api.jobs.ack(job_id, info="Publishing contacts...", progress=10)
    except Conflict:
        return  # another worker took this job first, or it was cancelled: not ours to run

    contacts = (await event.api.records.get(sheet_id, limit=1)).total
    if not contacts:
        await event.api.jobs.fail(job_id, outcome=Outcome(
            message="Nothing to publish yet: the Contacts sheet is empty. Add contacts, then try again.",
            acknowledge=True,
            next={"type": "retry", "label": "Try again"},
        ))
        return
    await event.api.jobs.complete(job_id, outcome=Outcome(message=f"Published {contacts} contacts.", acknowledge=True))


HANDLERS = {
    "openDownloads": open_downloads,
    "openGuide": open_guide,
    "downloadTemplate": download_template,
    "downloadFiles": download_files,
    "openSnapshot": open_snapshot,
    "hideEmptyColumns": hide_empty_columns,
    "finishReview": finish_review,
    "showAll": show_all,
}


def register(listener: Listener) -> None:
    """Handle every action of the Contacts sheet."""
    for operation, handler in HANDLERS.items():
        listener.use(job_handler(f"sheet:{operation}", handler))
    listener.on("job:ready", {"job": "sheet:publish"}, publish)


listener = Listener("outcomes").use(register)

ACTIONS: list[dict[str, Any]] = [
    {"operation": "openDownloads", "label": "See downloads"},
    {"operation": "openGuide", "label": "Read about jobs"},
    {"operation": "downloadTemplate", "label": "Download a template"},
    {"operation": "downloadFiles", "label": "Download contacts"},
    {"operation": "openSnapshot", "label": "Compare with snapshot"},
    {"operation": "hideEmptyColumns", "label": "Hide empty columns"},
    {"operation": "finishReview", "label": "Finish review"},
    {"operation": "showAll", "label": "Show all contacts"},
    {"operation": "publish", "label": "Publish", "primary": True},
]


async def scenario(api: Api) -> list[str]:
    """Press Publish on an empty sheet (it fails, offering a retry), add contacts, then press every button."""
    space = await api.spaces.create(name="Outcomes", namespace=NAMESPACE)
    workbook = await api.workbooks.create(
        name="Outcomes Showcase",
        space_id=space.id,
        sheets=[{"name": "Contacts", "slug": "contacts", "actions": ACTIONS,
                 "fields": [{"key": "first_name"}, {"key": "middle_name"}, {"key": "last_name"}, {"key": "email"},
                            {"key": "phone"}]}],
    )
    sheet = workbook.sheets[0]
    first_try = await api.actions.trigger(sheet.id, "publish")
    await api.jobs.wait(first_try.id, timeout=30)

    await api.records.insert(sheet.id, [
        {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        {"first_name": "Alan", "last_name": "Turing", "email": "alan@example.com"},
        {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"},
    ])
    jobs = [await api.actions.trigger(sheet.id, action["operation"]) for action in ACTIONS]
    return [first_try.id, *(job.id for job in jobs)]


if __name__ == "__main__":
    from listener.demo import run_example

    run_example(listener, scenario)
