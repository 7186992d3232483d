"""Event topics and filters: the catalog of topics, topic globs and event filters.

A listener registers a topic pattern (`job:*`, `**`) and a filter
(`{"job": "workbook:export"}`); both are compiled once, at registration, into
small callables so that matching an event does no parsing.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from listener.errors import Invalid
from listener.models import Event, EventContext

__all__ = [
    "ACTION_TRIGGERED", "COMMIT_CREATED", "DOCUMENT_CREATED", "DOCUMENT_DELETED", "DOCUMENT_UPDATED", "FILE_CREATED",
    "FILE_DELETED", "FILTER_KEYS", "JOB_CANCELLED", "JOB_COMPLETED", "JOB_CREATED", "JOB_DELETED",
    "JOB_FAILED", "JOB_OUTCOME_ACKNOWLEDGED", "JOB_PARTS_COMPLETED", "JOB_READY", "JOB_UPDATED", "RECORDS_CREATED",
    "RECORDS_DELETED", "RECORDS_UPDATED", "SCHEDULE_CREATED", "SCHEDULE_DELETED", "SCHEDULE_UPDATED",
    "SHEET_CREATED", "SHEET_DELETED", "SHEET_UPDATED", "SNAPSHOT_CREATED", "SNAPSHOT_DELETED",
    "SNAPSHOT_RESTORED", "SPACE_CREATED", "SPACE_DELETED", "TOPICS",
    "WORKBOOK_CREATED", "WORKBOOK_DELETED",
    "WORKBOOK_UPDATED", "EventFilter", "TopicMatcher", "compile_filter", "compile_topic", "matches",
]  # fmt: skip

JOB_CREATED = "job:created"
JOB_READY = "job:ready"
JOB_UPDATED = "job:updated"
JOB_COMPLETED = "job:completed"
JOB_FAILED = "job:failed"
JOB_CANCELLED = "job:cancelled"
JOB_OUTCOME_ACKNOWLEDGED = "job:outcome-acknowledged"
JOB_DELETED = "job:deleted"
JOB_PARTS_COMPLETED = "job:parts-completed"
COMMIT_CREATED = "commit:created"
SPACE_CREATED = "space:created"
SPACE_DELETED = "space:deleted"
WORKBOOK_CREATED = "workbook:created"
WORKBOOK_UPDATED = "workbook:updated"
WORKBOOK_DELETED = "workbook:deleted"
SHEET_CREATED = "sheet:created"
SHEET_UPDATED = "sheet:updated"
SHEET_DELETED = "sheet:deleted"
RECORDS_CREATED = "records:created"
RECORDS_UPDATED = "records:updated"
RECORDS_DELETED = "records:deleted"
ACTION_TRIGGERED = "action:triggered"
FILE_CREATED = "file:created"
FILE_DELETED = "file:deleted"
DOCUMENT_CREATED = "document:created"
DOCUMENT_UPDATED = "document:updated"
DOCUMENT_DELETED = "document:deleted"
SNAPSHOT_CREATED = "snapshot:created"
SNAPSHOT_RESTORED = "snapshot:restored"
SNAPSHOT_DELETED = "snapshot:deleted"
SCHEDULE_CREATED = "schedule:created"
SCHEDULE_UPDATED = "schedule:updated"
SCHEDULE_DELETED = "schedule:deleted"

TOPICS: frozenset[str] = frozenset({
    JOB_CREATED, JOB_READY, JOB_UPDATED, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED,
    JOB_OUTCOME_ACKNOWLEDGED, JOB_DELETED, JOB_PARTS_COMPLETED, COMMIT_CREATED, SPACE_CREATED, SPACE_DELETED,
    WORKBOOK_CREATED, WORKBOOK_UPDATED, WORKBOOK_DELETED, SHEET_CREATED, SHEET_UPDATED,
    SHEET_DELETED, RECORDS_CREATED, RECORDS_UPDATED, RECORDS_DELETED, ACTION_TRIGGERED,
    FILE_CREATED, FILE_DELETED, DOCUMENT_CREATED, DOCUMENT_UPDATED, DOCUMENT_DELETED,
    SNAPSHOT_CREATED, SNAPSHOT_RESTORED, SNAPSHOT_DELETED, SCHEDULE_CREATED, SCHEDULE_UPDATED, SCHEDULE_DELETED,
})  # fmt: skip

# camelCase wire name -> snake_case attribute of EventContext.
_CONTEXT_ATTRS: dict[str, str] = {(f.alias or name): name for name, f in EventContext.model_fields.items()}

FILTER_KEYS: dict[str, str] = {
    "job": "context.job",
    "domain": "context.domain",
    "operation": "context.operation",
    "status": "payload.status",
    "isPart": "payload.isPart",
    "managed": "payload.managed",
    "sheet": "context.sheetSlug",
    "workbook": "context.workbookId",
    "space": "context.spaceId",
    "file": "context.fileId",
    "document": "context.documentId",
    "snapshot": "context.snapshotId",
    "actorId": "context.actorId",
    "namespace": "context.namespace",
    **{
        camel: f"context.{camel}"
        for camel in ("jobId", "spaceId", "workbookId", "sheetId", "sheetSlug", "fileId", "documentId", "commitId",
                      "snapshotId")
    },
}

_STARS = re.compile(r"(\*\*|\*)")

Getter = Callable[[Event], Any]
Test = Callable[[Any], bool]


def _glob(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for token in _STARS.split(pattern):
        if token == "**":
            parts.append(".*")
        elif token == "*":
            parts.append("[^:]*")
        elif token:
            parts.append(re.escape(token))
    return re.compile("".join(parts), re.DOTALL)


class TopicMatcher:
    """A compiled topic pattern; call it with a topic to know whether it matches."""

    __slots__ = ("_test", "exact", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.exact = "*" not in pattern
        self._test: Callable[[str], bool]
        if self.exact:
            self._test = lambda topic: topic == pattern
        elif pattern == "**":
            self._test = lambda topic: True
        else:
            fullmatch = _glob(pattern).fullmatch
            self._test = lambda topic: fullmatch(topic) is not None

    def __call__(self, topic: str) -> bool:
        """Whether `topic` matches this pattern."""
        return self._test(topic)

    def __repr__(self) -> str:
        return f"TopicMatcher({self.pattern!r})"


def compile_topic(pattern: str) -> TopicMatcher:
    """Compile a topic glob (`job:*`, `*:created`, `**`), refusing empty segments."""
    if not isinstance(pattern, str) or not pattern or "" in pattern.split(":"):
        raise Invalid(
            f"Invalid topic pattern {pattern!r}: segments separated by ':' must not be empty.",
            details={"pattern": pattern},
        )
    return TopicMatcher(pattern)


@functools.lru_cache(maxsize=1024)
def _cached_topic(pattern: str) -> TopicMatcher:
    return compile_topic(pattern)


def matches(pattern: str, topic: str) -> bool:
    """Whether `topic` matches the topic glob `pattern`."""
    return _cached_topic(pattern)(topic)


class EventFilter:
    """A compiled filter; call it with an event to know whether every key matches."""

    __slots__ = ("_check", "spec")

    def __init__(self, spec: dict[str, Any], check: Callable[[Event], bool]) -> None:
        self.spec = spec
        self._check = check

    def __call__(self, event: Event) -> bool:
        """Whether `event` matches every key of this filter."""
        return self._check(event)

    def __repr__(self) -> str:
        return f"EventFilter({self.spec!r})"


def _unknown_key(key: str) -> Invalid:
    candidates = [*FILTER_KEYS, *FILTER_KEYS.values()]
    candidates += [f"context.{name}" for pair in _CONTEXT_ATTRS.items() for name in pair]
    close = difflib.get_close_matches(key, dict.fromkeys(candidates), n=1)
    suggestion = close[0] if close else None
    hint = f"; did you mean '{suggestion}'?" if suggestion else "."
    return Invalid(
        f"Unknown filter key {key!r}{hint} Use one of: {', '.join(FILTER_KEYS)} "
        "or a dotted path such as 'payload.status'.",
        details={"key": key, "suggestion": suggestion},
    )


def _walk(steps: tuple[str, ...]) -> Getter:
    def get(event: Event) -> Any:
        value: Any = event.payload
        for step in steps:
            if isinstance(value, dict):
                value = value.get(step)
            elif isinstance(value, list | tuple) and step.isdigit() and int(step) < len(value):
                value = value[int(step)]
            else:
                return None
        return value

    return get


def _getter(key: str) -> Getter:
    path = FILTER_KEYS.get(key, key)
    root, _, rest = path.partition(".")
    steps = tuple(rest.split("."))
    if root == "context" and len(steps) == 1:
        attr = _CONTEXT_ATTRS.get(rest, rest)
        if attr in EventContext.model_fields:
            return attrgetter(f"context.{attr}")
    elif root == "payload" and rest and "" not in steps:
        if len(steps) == 1:
            return lambda event: event.payload.get(rest)
        return _walk(steps)
    raise _unknown_key(key)


def _test(key: str, expected: Any) -> Test:
    if isinstance(expected, list | tuple | set | frozenset):
        if not expected:
            raise Invalid(f"Filter key {key!r} has an empty list, which can never match.", details={"key": key})
        if all(isinstance(e, str) and "*" not in e for e in expected):
            names = frozenset(expected)
            return lambda value: isinstance(value, str) and value in names
        tests = [_test(key, e) for e in expected]
        return lambda value: any(test(value) for test in tests)
    if expected is None:
        return lambda value: value is None
    if isinstance(expected, str):
        if "*" not in expected:
            return lambda value: isinstance(value, str) and value == expected
        fullmatch = _glob(expected).fullmatch
        return lambda value: isinstance(value, str) and fullmatch(value) is not None
    # By type too: a filter on False must not match 0, nor 1 match True.
    kind = type(expected)
    return lambda value: type(value) is kind and value == expected


def compile_filter(filter: Mapping[str, Any] | None) -> EventFilter:
    """Compile a filter (`{"job": "workbook:export"}`); None or `{}` matches every event."""
    spec: Any = {} if filter is None else filter
    if not isinstance(spec, Mapping):
        raise Invalid(f"A filter must be a mapping of key to value, not {type(spec).__name__}.")
    pairs: list[tuple[Getter, Test]] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise Invalid(f"Filter keys must be strings, not {key!r}.", details={"key": repr(key)})
        pairs.append((_getter(key), _test(key, value)))
    spec = dict(spec)
    if not pairs:
        return EventFilter(spec, lambda event: True)
    if len(pairs) == 1:
        get, test = pairs[0]
        expected = next(iter(spec.values()))
        if isinstance(expected, str) and "*" not in expected and isinstance(get, attrgetter):
            # Context fields are str | None, so the common case is one read and one compare.
            return EventFilter(spec, lambda event: get(event) == expected)
        return EventFilter(spec, lambda event: test(get(event)))

    def check(event: Event) -> bool:
        return all(test(get(event)) for get, test in pairs)

    return EventFilter(spec, check)
