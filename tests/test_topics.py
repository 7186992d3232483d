"""Tests for listener.topics: topic globs, event filters and their compile-time errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from listener import topics
from listener.errors import Invalid
from listener.models import Event, EventContext
from listener.topics import (
    FILTER_KEYS,
    JOB_OUTCOME_ACKNOWLEDGED,
    TOPICS,
    EventFilter,
    TopicMatcher,
    compile_filter,
    compile_topic,
    matches,
)


def make_event(topic: str = "job:ready", payload: dict[str, Any] | None = None, **context: Any) -> Event:
    return Event(
        id="ev_1",
        seq=1,
        topic=topic,
        context=EventContext(**context),
        payload=payload or {},
        created_at=datetime.now(UTC),
    )


EXPORT = make_event(
    "job:ready",
    payload={"status": "ready", "isPart": False, "count": 1, "job": {"input": {"format": "csv"}}, "rows": ["a", "b"]},
    job="workbook:export",
    domain="workbook",
    operation="export",
    job_id="us_jb_1",
    space_id="us_sp_1",
    workbook_id="us_wb_1",
    sheet_id="us_sh_1",
    sheet_slug="contacts",
    actor_id="us_usr_1",
)


# -- catalog ------------------------------------------------------------------


def test_catalog_has_every_documented_topic() -> None:
    assert len(TOPICS) == 33
    assert {topics.SCHEDULE_CREATED, topics.SCHEDULE_UPDATED, topics.SCHEDULE_DELETED} == {
        "schedule:created", "schedule:updated", "schedule:deleted"} <= TOPICS
    assert {topics.SNAPSHOT_CREATED, topics.SNAPSHOT_RESTORED, topics.SNAPSHOT_DELETED} == {
        "snapshot:created", "snapshot:restored", "snapshot:deleted"} <= TOPICS
    assert topics.JOB_PARTS_COMPLETED == "job:parts-completed" and topics.JOB_PARTS_COMPLETED in TOPICS
    assert JOB_OUTCOME_ACKNOWLEDGED == "job:outcome-acknowledged" and JOB_OUTCOME_ACKNOWLEDGED in TOPICS
    assert topics.JOB_CREATED == "job:created" and topics.COMMIT_CREATED == "commit:created"
    assert topics.ACTION_TRIGGERED == "action:triggered" and topics.DOCUMENT_DELETED in TOPICS
    assert topics.DOCUMENT_UPDATED == "document:updated" and topics.DOCUMENT_UPDATED in TOPICS


def test_every_topic_constant_is_in_the_catalog() -> None:
    values = [getattr(topics, name) for name in topics.__all__ if name.isupper()]
    constants = {value for value in values if isinstance(value, str) and ":" in value}
    assert constants == TOPICS


def test_every_exported_name_exists() -> None:
    assert all(hasattr(topics, name) for name in topics.__all__)
    assert "compile_filter" in topics.__all__ and "TopicMatcher" in topics.__all__


def test_filter_keys_map_to_their_documented_places() -> None:
    assert FILTER_KEYS["job"] == "context.job"
    assert FILTER_KEYS["sheet"] == "context.sheetSlug"
    assert FILTER_KEYS["workbook"] == "context.workbookId"
    assert FILTER_KEYS["status"] == "payload.status"
    assert FILTER_KEYS["isPart"] == "payload.isPart"
    assert FILTER_KEYS["actorId"] == "context.actorId"
    for camel in ("jobId", "spaceId", "workbookId", "sheetId", "sheetSlug", "fileId", "documentId", "commitId"):
        assert FILTER_KEYS[camel] == f"context.{camel}"


@pytest.mark.parametrize("key", sorted(FILTER_KEYS))
def test_every_short_key_compiles_and_reads_its_place(key: str) -> None:
    root, _, name = FILTER_KEYS[key].partition(".")
    event = make_event(payload={name: "v"}) if root == "payload" else make_event(**{name: "v"})
    assert compile_filter({key: "v"})(event) is True
    assert compile_filter({key: "w"})(event) is False


# -- topic globs --------------------------------------------------------------


TOPIC_CASES = [
    ("job:ready", "job:ready", True),
    ("job:ready", "job:readyx", False),
    ("job:ready", "job:read", False),
    ("job:*", "job:ready", True),
    ("job:*", "job:outcome-acknowledged", True),
    ("job:*", "job:x:y", False),
    ("job:*", "commit:created", False),
    ("*:created", "job:created", True),
    ("*:created", "commit:created", True),
    ("*:created", "job:deleted", False),
    ("*:created", "a:b:created", False),
    ("*", "job:ready", False),
    ("**", "job:ready", True),
    ("**", "a:b:c:d", True),
    ("job:**", "job:ready", True),
    ("job:**", "job:a:b", True),
    ("job:**", "commit:created", False),
    ("**:created", "a:b:created", True),
    ("job:outcome-*", "job:outcome-acknowledged", True),
    ("job:outcome-*", "job:outcome", False),
    ("job:*-acknowledged", "job:outcome-acknowledged", True),
    ("j*:ready", "job:ready", True),
    ("j*:ready", "x:job:ready", False),
    ("job:re.dy", "job:ready", False),
    ("job:re.dy", "job:re.dy", True),
    ("job:a+", "job:aaa", False),
    ("job:a+", "job:a+", True),
    ("job:(x|y)", "job:x", False),
    ("job:[ab]*", "job:a", False),
    ("job:[ab]*", "job:[ab]anything", True),
    ("custom:thing", "custom:thing", True),
]


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    TOPIC_CASES,
    ids=[f"{p}->{t}-{'yes' if e else 'no'}" for p, t, e in TOPIC_CASES],
)
def test_topic_glob(pattern: str, topic: str, expected: bool) -> None:
    matcher = compile_topic(pattern)
    assert isinstance(matcher, TopicMatcher)
    assert matcher.pattern == pattern
    assert matcher(topic) is expected
    assert matches(pattern, topic) is expected


def test_exact_topic_is_marked_exact_and_globs_are_not() -> None:
    assert compile_topic("job:ready").exact is True
    assert compile_topic("job:*").exact is False
    assert compile_topic("**").exact is False


BAD_PATTERNS = ["", "job:", ":x", "a::b", ":", "**:"]


@pytest.mark.parametrize("pattern", BAD_PATTERNS, ids=[repr(p) for p in BAD_PATTERNS])
def test_bad_topic_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(Invalid) as info:
        compile_topic(pattern)
    assert repr(pattern) in info.value.message
    assert info.value.details == {"pattern": pattern}


def test_matches_refuses_bad_pattern_too() -> None:
    with pytest.raises(Invalid):
        matches("a::b", "a::b")


# -- filters ------------------------------------------------------------------


FILTER_CASES: list[tuple[str, dict[str, Any] | None, bool]] = [
    ("none-matches-all", None, True),
    ("empty-matches-all", {}, True),
    ("job-exact", {"job": "workbook:export"}, True),
    ("job-other", {"job": "sheet:export"}, False),
    ("job-glob", {"job": "workbook:*"}, True),
    ("job-glob-other-domain", {"job": "sheet:*"}, False),
    ("job-glob-star-first", {"job": "*:export"}, True),
    ("job-doublestar", {"job": "**"}, True),
    ("domain", {"domain": "workbook"}, True),
    ("operation", {"operation": "submit"}, False),
    ("status", {"status": "ready"}, True),
    ("status-other", {"status": "complete"}, False),
    ("sheet-is-slug", {"sheet": "contacts"}, True),
    ("sheet-not-id", {"sheet": "us_sh_1"}, False),
    ("workbook-id", {"workbook": "us_wb_1"}, True),
    ("space-id", {"space": "us_sp_2"}, False),
    ("actor", {"actorId": "us_usr_1"}, True),
    ("camel-job-id", {"jobId": "us_jb_1"}, True),
    ("camel-sheet-slug", {"sheetSlug": "contacts"}, True),
    ("list-or-hit", {"job": ["sheet:export", "workbook:export"]}, True),
    ("list-or-miss", {"job": ["sheet:export", "file:export"]}, False),
    ("tuple-or-globs", {"job": ("sheet:*", "workbook:*")}, True),
    ("set-or", {"status": {"ready", "complete"}}, True),
    ("list-mixed-types", {"isPart": ["no", False]}, True),
    ("bool-exact", {"isPart": False}, True),
    ("bool-not-int", {"isPart": 0}, False),
    ("int-exact", {"payload.count": 1}, True),
    ("int-not-bool", {"payload.count": True}, False),
    ("int-not-str", {"payload.count": "1"}, False),
    ("int-not-float", {"payload.count": 1.0}, False),
    ("none-matches-missing-context", {"fileId": None}, True),
    ("none-not-present-context", {"sheetId": None}, False),
    ("none-matches-missing-payload", {"payload.nope": None}, True),
    ("list-with-none", {"file": [None, "us_fl_1"]}, True),
    ("missing-context-never-glob", {"file": "**"}, False),
    ("missing-context-never-exact", {"document": "us_dc_1"}, False),
    ("missing-payload-never-glob", {"payload.nope": "*"}, False),
    ("glob-never-matches-non-string", {"payload.count": "*"}, False),
    ("dotted-payload", {"payload.status": "ready"}, True),
    ("dotted-payload-deep", {"payload.job.input.format": "csv"}, True),
    ("dotted-payload-deep-other", {"payload.job.input.format": "xlsx"}, False),
    ("dotted-payload-deep-missing", {"payload.job.output.format": "csv"}, False),
    ("dotted-payload-through-string", {"payload.status.x": "ready"}, False),
    ("dotted-payload-list-index", {"payload.rows.1": "b"}, True),
    ("dotted-payload-list-out-of-range", {"payload.rows.5": "b"}, False),
    ("dotted-context-camel", {"context.sheetSlug": "contacts"}, True),
    ("dotted-context-snake", {"context.sheet_slug": "contacts"}, True),
    ("dotted-context-other", {"context.jobId": "us_jb_2"}, False),
    ("and-all-match", {"job": "workbook:export", "status": "ready", "isPart": False}, True),
    ("and-one-fails", {"job": "workbook:export", "status": "ready", "isPart": True}, False),
    ("and-glob-and-list", {"job": "workbook:*", "sheet": ["orders", "contacts"]}, True),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_filter(spec: dict[str, Any] | None, expected: bool) -> None:
    compiled = compile_filter(spec)
    assert isinstance(compiled, EventFilter)
    assert compiled(EXPORT) is expected


def test_filter_keeps_its_spec_and_does_not_share_it() -> None:
    spec = {"job": "workbook:export"}
    compiled = compile_filter(spec)
    spec["job"] = "sheet:export"
    assert compiled.spec == {"job": "workbook:export"}
    assert compiled(EXPORT) is True
    assert compile_filter(None).spec == {}


def test_filter_accepts_a_string_enum_value() -> None:
    from listener.models import JobStatus

    event = make_event(payload={"status": JobStatus.READY})
    assert compile_filter({"status": "ready"})(event) is True
    assert compile_filter({"status": "rea*"})(event) is True
    assert compile_filter({"status": JobStatus.READY})(make_event(payload={"status": "ready"})) is True


def test_exact_context_filter_does_not_match_a_missing_field() -> None:
    bare = make_event()
    assert compile_filter({"job": "workbook:export"})(bare) is False
    assert compile_filter({"job": None})(bare) is True
    assert compile_filter({"context.job": "workbook:export"})(EXPORT) is True


def test_filter_is_reusable_across_events() -> None:
    compiled = compile_filter({"job": "workbook:export", "status": ["ready", "executing"]})
    assert compiled(EXPORT) is True
    assert compiled(make_event(job="workbook:export", payload={"status": "executing"})) is True
    assert compiled(make_event(job="workbook:export", payload={"status": "complete"})) is False
    assert compiled(make_event(job="workbook:submit", payload={"status": "ready"})) is False


# -- compile-time errors ------------------------------------------------------


UNKNOWN_KEYS = [
    ("shet", "sheet"),
    ("Job", "job"),
    ("workbok", "workbook"),
    ("context.sheetSlg", "context.sheetSlug"),
    ("context.shet_slug", "context.sheet_slug"),
    ("payload.", "payload.status"),
    ("payload", "payload.status"),
    ("context.jobId.x", "context.jobId"),
    ("zzzzzzzz", None),
]


@pytest.mark.parametrize(("key", "suggestion"), UNKNOWN_KEYS, ids=[k or "empty" for k, _ in UNKNOWN_KEYS])
def test_unknown_key_is_refused_with_a_suggestion(key: str, suggestion: str | None) -> None:
    with pytest.raises(Invalid) as info:
        compile_filter({key: "x"})
    message = info.value.message
    assert f"Unknown filter key {key!r}" in message
    assert info.value.details == {"key": key, "suggestion": suggestion}
    if suggestion is None:
        assert "did you mean" not in message
    else:
        assert f"did you mean '{suggestion}'?" in message
    assert "job, domain, operation" in message and "'payload.status'" in message


def test_unknown_key_message_reads_as_documented() -> None:
    with pytest.raises(Invalid) as info:
        compile_filter({"shet": "contacts"})
    assert info.value.message.startswith("Unknown filter key 'shet'; did you mean 'sheet'? Use one of: job, domain, ")
    assert info.value.message.endswith("or a dotted path such as 'payload.status'.")


BAD_FILTERS: list[tuple[str, Any, str]] = [
    ("empty-list", {"job": []}, "empty list"),
    ("empty-tuple", {"status": ()}, "empty list"),
    ("empty-set", {"status": set()}, "empty list"),
    ("not-a-mapping-list", [("job", "x")], "mapping"),
    ("not-a-mapping-str", "job=workbook:export", "mapping"),
    ("non-string-key", {1: "x"}, "strings"),
    ("unknown-context-field", {"context.nope": "x"}, "Unknown filter key"),
    ("empty-payload-step", {"payload.a..b": "x"}, "Unknown filter key"),
    ("unknown-root", {"meta.status": "x"}, "Unknown filter key"),
]


@pytest.mark.parametrize(("spec", "fragment"), [c[1:] for c in BAD_FILTERS], ids=[c[0] for c in BAD_FILTERS])
def test_bad_filter_is_refused(spec: Any, fragment: str) -> None:
    with pytest.raises(Invalid) as info:
        compile_filter(spec)
    assert fragment in info.value.message
    assert info.value.status == 422
