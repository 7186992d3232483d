"""Custom job: any change to a Contacts sheet starts the job `workbook:myCustomOperation`.

Any event can start a job. Here a listener on `commit:created`, filtered to
sheets whose slug is `contacts`, creates one with `jobs.create` (trigger
`immediate`, so it is ready at once), and a second handler runs it.
"""

from __future__ import annotations

import anyio

from listener import Conflict, Event, Listener, Outcome
from listener.api import Api

NAMESPACE = "custom-job"
"""The namespace of this story's space (the demo scopes each story's listener to its own)."""


async def on_commit(event: Event) -> None:
    """Records changed in a Contacts sheet: start the custom job on its workbook."""
    await event.api.jobs.create(
        type="workbook",
        operation="myCustomOperation",
        trigger="immediate",
        source=event.context.workbook_id,
    )


async def my_custom_operation(event: Event) -> None:
    """Run the custom job: count the contacts of its workbook."""
    job_id, workbook_id = event.context.job_id, event.context.workbook_id
    assert job_id and workbook_id, "a workbook job names the job and its workbook"
    try:
        await event.api.jobs.ack(job_id, info="Starting my custom operation.", progress=10)
    except Conflict:
        return  # another worker took this job first, or it was cancelled: not ours to run

    try:
        workbook = await event.api.workbooks.get(workbook_id)
        contacts = sum([(await event.api.records.get(sheet.id, limit=1)).total for sheet in workbook.sheets])
        await event.api.jobs.complete(job_id, outcome=Outcome(
            message=f"Successfully completed my custom operation: {workbook.name} has {contacts} contacts.",
        ))
    except Exception as exc:
        await event.api.jobs.fail(job_id, outcome=Outcome(message="Custom operation failed."),
                                  error=str(exc) or type(exc).__name__)


def register(listener: Listener) -> None:
    """Start the custom job on every commit to a Contacts sheet, and run it."""
    listener.on("commit:created", {"sheet": "contacts"}, on_commit)
    listener.on("job:ready", {"job": "workbook:myCustomOperation"}, my_custom_operation)


listener = Listener("custom-job").use(register)


async def scenario(api: Api) -> list[str]:
    """Add contacts to a Contacts sheet and return the id of the job the listener starts for it."""
    space = await api.spaces.create(name="Custom jobs", namespace=NAMESPACE)
    workbook = await api.workbooks.create(
        name="Sales Leads",
        space_id=space.id,
        sheets=[{"name": "Contacts", "slug": "contacts", "fields": [{"key": "name"}, {"key": "email"}]}],
    )
    await api.records.insert(workbook.sheets[0].id, [
        {"name": "Katherine Johnson", "email": "katherine@example.com"},
        {"name": "Dorothy Vaughan", "email": "dorothy@example.com"},
    ])
    return [await started_job(api, "myCustomOperation", source=workbook.id)]


async def started_job(api: Api, operation: str, *, source: str, timeout: float = 10) -> str:
    """The id of the job with this operation and source, once a listener has created it."""
    # The listener creates the job, not us, and the Api has no way to await a job that does not exist yet.
    with anyio.fail_after(timeout):
        while True:
            for job in (await api.jobs.list(operation=operation)).items:
                if job.source == source:
                    return job.id
            await anyio.sleep(0.01)


if __name__ == "__main__":
    from listener.demo import run_example

    run_example(listener, scenario)
