"""Wire models: camelCase JSON, every outcome `next` type, and bad input named by field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from listener import Event, EventContext, Invalid, Job, JobStatus, Outcome
from listener.models import Action, parse

NEXT_OK: list[dict[str, Any]] = [
    {"type": "id", "id": "dev_sp_1234", "path": "files", "query": "mode=export", "label": "See all downloads"},
    {"type": "url", "url": "http://www.google.com", "label": "Go to Google"},
    {"type": "url", "url": "/api/v1/jobs"},
    {"type": "download", "fileName": "DownloadedFromFlatfile.csv", "url": "source_of_file.csv", "label": "Download"},
    {"type": "download", "file_name": "x.csv", "url": "https://example.com/x.csv"},
    {"type": "files", "label": "Download files", "files": [{"fileId": "us_fl_123"}]},
    {"type": "snapshot", "label": "Go to Snapshot", "snapshotId": "us_ss_1", "sheetId": "us_sh_1"},
    {"type": "view", "label": "Hide columns", "sheetId": "us_sh_1", "hiddenColumns": ["age", "phone"]},
    {"type": "retry", "label": "Try again"},
    {"type": "wait", "fade": True, "confetti": True},
    {"type": "clear_filters", "sheetId": "us_sh_1", "label": "Clear filters"},
]

NEXT_BAD: list[tuple[dict[str, Any], str]] = [
    ({"type": "url", "url": "javascript:alert(1)"}, "next.url.url"),
    ({"type": "url", "url": "JavaScript:alert(1)"}, "next.url.url"),
    ({"type": "url", "url": "java\tscript:alert(1)"}, "next.url.url"),
    ({"type": "url", "url": " javascript:alert(1)"}, "next.url.url"),
    ({"type": "url", "url": "data:text/html,hi"}, "next.url.url"),
    ({"type": "download", "url": "vbscript:x", "fileName": "a"}, "next.download.url"),
    ({"type": "url"}, "next.url.url"),
    ({"type": "id"}, "next.id.id"),
    ({"type": "files", "files": []}, "next.files.files"),
    ({"type": "files", "files": [{"id": "x"}]}, "next.files.files.0.fileId"),
    ({"type": "snapshot", "sheetId": "s"}, "next.snapshot.snapshotId"),
    ({"type": "view", "hiddenColumns": ["a"]}, "next.view.sheetId"),
    ({"type": "teleport"}, "next"),
    ({"type": "retry", "colour": "red"}, "next.retry.colour"),
]


@pytest.mark.parametrize("next_", NEXT_OK, ids=[f"{n['type']}-{i}" for i, n in enumerate(NEXT_OK)])
def test_every_next_type_is_accepted(next_: dict[str, Any]) -> None:
    outcome = parse(Outcome, {"message": "done", "acknowledge": True, "next": next_})
    assert outcome.next is not None and outcome.next.type == next_["type"]
    dumped = outcome.model_dump(exclude_none=True)["next"]
    assert dumped["type"] == next_["type"]
    assert parse(Outcome, outcome.model_dump()) == outcome, "round-trips through its own JSON"


@pytest.mark.parametrize(("next_", "field"), NEXT_BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(NEXT_BAD)])
def test_malformed_next_is_refused_naming_the_field(next_: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse(Outcome, {"next": next_})
    assert field in [d["field"] for d in raised.value.details]
    assert field in raised.value.message


def test_outcome_fields_are_camel_case_on_the_wire() -> None:
    outcome = Outcome(message="m", heading="h", button_text="OK", hide_default_button=True,
                      trigger={"type": "automatic"})  # type: ignore[arg-type]
    assert outcome.model_dump(exclude_none=True) == {
        "message": "m", "heading": "h", "acknowledge": False, "buttonText": "OK", "hideDefaultButton": True,
        "trigger": {"type": "automatic"}}


def test_job_json_round_trip_and_derived_name() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    job = Job(id="jb_1", type="workbook", operation="export", created_at=now, updated_at=now)  # type: ignore[arg-type]
    data = job.model_dump(mode="json")
    assert data["job"] == "workbook:export" and data["createdAt"] == "2026-01-01T00:00:00Z"
    assert data["status"] == JobStatus.CREATED.value and "estimatedCompletionAt" in data
    assert Job.model_validate_json(job.model_dump_json()) == job


def test_action_with_input_form() -> None:
    action = parse(Action, {
        "operation": "export", "label": "Export Data", "primary": True, "confirm": True, "tooltip": "Send it",
        "mode": "toolbarBlocking", "messages": [{"type": "error", "content": "Fix errors first"}],
        "constraints": [{"type": "hasData"}],
        "inputForm": {"type": "simple", "fields": [
            {"key": "format", "label": "Format", "type": "enum",
             "config": {"options": [{"value": "csv"}, {"value": "xlsx"}]}, "constraints": [{"type": "required"}]},
        ]},
    })
    assert action.input_form is not None and action.input_form.fields[0].constraints[0].type == "required"
    with pytest.raises(Invalid, match="operation"):
        parse(Action, {"operation": "", "label": "x"})
    with pytest.raises(Invalid, match="mode"):
        parse(Action, {"operation": "x", "label": "x", "mode": "sideways"})


def test_a_trusted_event_is_the_event_validation_would_make() -> None:
    now = datetime.now(UTC)
    context = EventContext(job_id="jb_1", job="workbook:export", domain="workbook", operation="export")
    values = {"id": "ev_000000000007", "seq": 7, "topic": "job:updated", "context": context,
              "payload": {"progress": 50}, "created_at": now}
    trusted = Event.trusted(**values)
    validated = Event.model_validate(values)
    assert trusted == validated
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_fields_set == validated.model_fields_set
    with pytest.raises(RuntimeError, match="not being dispatched"):
        _ = trusted.api
    copy = trusted.for_dispatch(api=object())  # type: ignore[arg-type]
    copy.cache["k"] = 1
    assert copy.model_dump() == trusted.model_dump() and copy.cache == {"k": 1} and trusted.cache == {}


def test_an_event_serializes_once_and_its_copies_and_equality_do_not_see_it() -> None:
    context = EventContext(job_id="jb_1", job="workbook:export")
    event = Event.trusted(id="ev_000000000001", seq=1, topic="job:ready", context=context, payload={"n": 1},
                          created_at=datetime.now(UTC))
    text = event.to_json()
    assert text == event.model_dump_json() and event.to_json() is text
    assert event == Event.model_validate_json(text)
    changed = event.model_copy(update={"payload": {"n": 2}})
    assert '"n":2' in changed.to_json() and event.to_json() is text
