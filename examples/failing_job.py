"""Failing jobs: a handler that raises, and an action whose input does not validate.

With `job_handler` there is no try/except to write. An exception fails the job
with its message in `job.error.message`; input that does not validate as the
handler's pydantic model fails it with kind `invalid_input` before it runs.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from listener import Event, Listener, Outcome
from listener.api import Api
from plugins.job_handler import Tick, job_handler

NAMESPACE = "failing-job"
"""The namespace of this story's space (the demo scopes each story's listener to its own)."""


def _sheet_id(event: Event) -> str:
    assert event.context.sheet_id, "a sheet action's job names its sheet"
    return event.context.sheet_id


async def validate_emails(event: Event, tick: Tick) -> Outcome:
    """Fail, by raising, when a contact has no email address."""
    records = (await event.api.records.get(_sheet_id(event))).items
    missing = [record.values["name"] for record in records if not record.values.get("email")]
    if missing:
        raise ValueError(f"{len(missing)} of {len(records)} contacts have no email address: {', '.join(missing)}.")
    return Outcome(message=f"All {len(records)} contacts have an email address.")


class InviteInput(BaseModel):
    """What the Send invites form asks for; `job_handler` validates `job.input` as this."""

    subject: str = Field(min_length=1)
    batch_size: int = Field(ge=1, le=100)


async def send_invites(event: Event, tick: Tick) -> Outcome:
    """Prepare an invitation for every contact, a batch at a time."""
    form: InviteInput = event.cache["input"]
    records = (await event.api.records.get(_sheet_id(event))).items
    batches = math.ceil(len(records) / form.batch_size)
    for batch in range(1, batches + 1):
        await tick(batch * 100 // batches, f"Prepared batch {batch} of {batches}")
    return Outcome(message=f"Prepared {len(records)} invitations titled {form.subject!r} in {batches} batches.")


def register(listener: Listener) -> None:
    """Handle the Validate emails and Send invites buttons."""
    listener.use(job_handler("sheet:validateEmails", validate_emails))
    listener.use(job_handler("sheet:sendInvites", send_invites, input=InviteInput))


listener = Listener("failing-job").use(register)

ACTIONS = [
    {"operation": "validateEmails", "label": "Validate emails"},
    {"operation": "sendInvites", "label": "Send invites", "input_form": {"fields": [
        {"key": "subject", "label": "Subject", "constraints": [{"type": "required"}]},
        {"key": "batch_size", "label": "Batch size", "type": "number", "default_value": 50},
    ]}},
]


async def scenario(api: Api) -> list[str]:
    """Validate contacts that lack emails, then send invites with a good and a bad batch size."""
    space = await api.spaces.create(name="Failing jobs", namespace=NAMESPACE)
    workbook = await api.workbooks.create(
        name="Event Guests",
        space_id=space.id,
        sheets=[{"name": "Guests", "slug": "guests", "actions": ACTIONS,
                 "fields": [{"key": "name"}, {"key": "email"}]}],
    )
    sheet = workbook.sheets[0]
    await api.records.insert(sheet.id, [
        {"name": "Ada Lovelace", "email": "ada@example.com"},
        {"name": "Alan Turing"},
        {"name": "Grace Hopper", "email": "grace@example.com"},
        {"name": "Edsger Dijkstra", "email": ""},
    ])
    validate = await api.actions.trigger(sheet.id, "validateEmails")
    # The form only checks that the batch size is a number; the handler's model also wants it at most 100.
    invite = await api.actions.trigger(sheet.id, "sendInvites", input={"subject": "You're invited!", "batch_size": 3})
    too_big = await api.actions.trigger(sheet.id, "sendInvites", input={"subject": "Hello", "batch_size": 500})
    return [validate.id, invite.id, too_big.id]


if __name__ == "__main__":
    from listener.demo import run_example

    run_example(listener, scenario)
