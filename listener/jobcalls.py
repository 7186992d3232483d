"""What the jobs calls take (`jobs.create`, `ack`, `update`, `fail`, `split`, ...): their bodies and bounds.

The same models read a REST body and the in-process Api's keyword arguments, so both answer bad
input alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from listener import status_words
from listener.job import DEFAULT_MAX_LEASE_EXPIRATIONS, JobMode, JobTrigger, JobTypeName, RetryPolicy
from listener.outcomes import Outcome
from listener.wire import MAX_INT64, InputDate, Model, NonEmpty, Operation, parse

__all__ = [
    "MAX_BULK",
    "MAX_DATA_ROWS",
    "MAX_DEBOUNCE_SECONDS",
    "MAX_PARTS",
    "MAX_PRIORITY",
    "MIN_RATE",
    "SEARCH_WINDOW",
    "Attempt",
    "BulkAction",
    "ConcurrencyKey",
    "JobAck",
    "JobAttach",
    "JobBulk",
    "JobBulkRefusal",
    "JobBulkResult",
    "JobCancel",
    "JobCheckpoint",
    "JobComplete",
    "JobCounts",
    "JobCountsQuery",
    "JobCreate",
    "JobData",
    "JobErrors",
    "JobFail",
    "JobFilter",
    "JobHeartbeat",
    "JobItemError",
    "JobLimits",
    "JobListQuery",
    "JobPriority",
    "JobSettings",
    "JobSort",
    "JobSplit",
    "JobUpdate",
    "MetadataTerm",
    "NewJobItemError",
    "Priority",
    "Progress",
    "StatusWord",
    "job_spec",
    "metadata_pair",
    "metadata_terms",
]


def _status_word(value: str) -> str:
    try:
        return status_words.word(value)
    except ValueError as exc:
        raise PydanticCustomError("status_word", str(exc)) from None


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


StatusWord = Annotated[str, AfterValidator(_status_word), WithJsonSchema({
    "type": "string",
    "pattern": f"^({'|'.join(_any_case(w.word) for w in status_words.WORDS.values())})$",
    "description": f"A status, or another system's word for one (DESIGN.md §2): {status_words.accepted()}.",
    "examples": ["failed", "SUCCESS", "pending", "TIMEOUT"],
})]
"""A status word of `jobs.list`, any case, read as its lowercased form (listener.status_words)."""


Progress = Annotated[int, Field(ge=0, le=100)]

MAX_DEBOUNCE_SECONDS = 7 * 86_400
"""The longest debounce window: a week. Longer is a schedule (`run_at`), not a burst being coalesced."""

MAX_PRIORITY = 1_000
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
"""A job's priority: higher runs first, 0 by default."""

ConcurrencyKey = Annotated[str, Field(min_length=1, max_length=200)]
"""What a job's per-key limits count by (a tenant, say: `tenant:42`)."""


class JobCreate(Model):
    """The body of `jobs.create`.

    `dedupe_key`: while a job of the same type:operation with this key waits to start (never acked yet:
    created, planning, scheduled or ready), a create with the key returns that job instead of adding one;
    with `debounce_seconds` it also replaces that job's input and pushes its start back to that many
    seconds after this create (listener/platform/dedupe.py).
    """

    type: JobTypeName
    operation: Operation
    source: NonEmpty | None = None
    destination: str | None = None
    trigger: JobTrigger = JobTrigger.IMMEDIATE
    mode: JobMode = JobMode.FOREGROUND
    managed: bool = False
    info: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=365 * 86_400)] = 86_400
    lease_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60
    max_lease_expirations: Annotated[int, Field(ge=0, le=100)] = DEFAULT_MAX_LEASE_EXPIRATIONS
    run_at: InputDate | None = None
    predecessor_ids: Annotated[list[NonEmpty], Field(max_length=100)] = Field(default_factory=list)
    dedupe_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    debounce_seconds: Annotated[float, Field(gt=0, le=MAX_DEBOUNCE_SECONDS)] | None = None

    @model_validator(mode="after")
    def _debounce_needs_key(self) -> JobCreate:
        if self.debounce_seconds is not None and self.dedupe_key is None:
            raise PydanticCustomError("debounce_without_key", "debounceSeconds needs a dedupeKey: the key names "
                                      "the jobs a debounce window coalesces.")
        return self

    priority: Priority = 0
    concurrency_key: ConcurrencyKey | None = None


class JobPriority(Model):
    """The body of `jobs.set_priority`: the new priority of a job that has not started."""

    priority: Priority


def job_spec(**fields: Any) -> JobCreate:
    """A validated `JobCreate` from `jobs.create`'s keyword arguments; optional ones given as None are left out."""
    required = ("type", "operation", "source", "destination", "trigger", "mode", "managed", "info")
    body = {k: v for k, v in fields.items() if k in required or v is not None}
    if body.get("predecessor_ids") is not None:
        body["predecessor_ids"] = list(body["predecessor_ids"])
    return parse(JobCreate, body, what="job")


class JobAck(Model):
    """The body of `jobs.ack`; only the fields given change (null clears info or estimatedCompletionAt).

    A listener may bring the retry policy and lease it handles the job with (job_handler does).
    """

    info: str | None = None
    progress: Progress = 0  # a job always has a progress: null is refused, not stored
    estimated_completion_at: InputDate | None = None
    retry: RetryPolicy | None = None
    lease_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60


Attempt = Annotated[int, Field(ge=1, le=MAX_INT64)]
"""Given by a worker, the attempt it is running: a call from an attempt that is over gets Conflict."""


class JobUpdate(Model):
    """The body of `jobs.update`; only the fields given change (null clears info or estimatedCompletionAt)."""

    info: str | None = None
    progress: Progress = 0  # a job always has a progress and metadata: null is refused, not stored
    estimated_completion_at: InputDate | None = None
    metadata: dict[str, Any] = {}
    processed: Annotated[int, Field(ge=0, le=MAX_INT64)] = 0
    total: Annotated[int, Field(ge=0, le=MAX_INT64)] = 0
    attempt: Attempt | None = None


class JobItemError(Model):
    """One entry of a job's error log: which item failed, and why."""

    item: str | None = None
    message: str = Field(min_length=1, max_length=2_000)
    created_at: datetime | None = None


class NewJobItemError(JobItemError):
    """An entry for a job's error log as given: its time, if given, is one that `InputDate` takes.

    Not `JobItemError` itself, which also reads back what the log holds, as it was taken.
    """

    model_config = ConfigDict(from_attributes=True)  # a JobItemError given to jobs.log_errors is read as one

    created_at: InputDate | None = None


class JobErrors(Model):
    """The body of `jobs.log_errors`: entries to append to the job's error log."""

    errors: list[NewJobItemError] = Field(min_length=1, max_length=500)


class JobCheckpoint(Model):
    """The body of `jobs.checkpoint`: a small JSON state that a later attempt resumes from."""

    state: dict[str, Any]
    attempt: Attempt | None = None


class JobHeartbeat(Model):
    """The body of `jobs.heartbeat`: the worker is alive; renew the lease."""

    attempt: Attempt | None = None


class JobComplete(Model):
    """The body of `jobs.complete`."""

    outcome: Outcome | None = None
    info: str | None = None
    attempt: Attempt | None = None


class JobFail(Model):
    """The body of `jobs.fail`; the error message defaults to the outcome's message.

    A `retryable` failure with attempts left under the job's retry policy schedules the next attempt.
    """

    outcome: Outcome | None = None
    info: str | None = None
    error: str | None = None
    kind: Literal["error", "timeout", "lease_expired", "invalid_input"] = "error"
    retryable: bool = False
    attempt: Attempt | None = None


SEARCH_WINDOW = 10_000
"""A text or metadata search looks through this many of the newest jobs that match the listing's other filters:
those conditions read each job's document, so they are bounded rather than run over every job."""

_METADATA_TERM = re.compile(r"^([A-Za-z0-9_\-]{1,100})=(.{0,500})$", re.DOTALL)


def _metadata_term(value: str) -> str:
    if not _METADATA_TERM.match(value):
        raise PydanticCustomError("metadata_term", "must be key=value, the key of letters, digits, _ and - "
                                                   "(up to 100), the value up to 500 characters")
    return value


MetadataTerm = Annotated[str, AfterValidator(_metadata_term), WithJsonSchema({
    "type": "string", "pattern": _METADATA_TERM.pattern, "examples": ["batch=7", "customer=acme"],
    "description": "key=value: jobs whose metadata has this key with this value (a string, or a number, true or "
                   "false as JSON writes it)."})]


def metadata_terms(metadata: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """`key=value` terms from a dict (a value that is not a string as JSON writes it), or the terms as given."""
    if metadata is None:
        return []
    if isinstance(metadata, Mapping):
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in metadata.items()]
    return [metadata] if isinstance(metadata, str) else list(metadata)


def metadata_pair(term: str) -> tuple[str, str]:
    """A validated `key=value` term as (key, value)."""
    key, _, value = term.partition("=")
    return key, value


JobSort = Literal["created", "-created", "started", "-started", "ended", "-ended", "duration", "-duration"]
"""A listing's order: by creation (the default, `-created`: newest first), start, end or duration (ΔT: from the
start, or the creation of a job that never started, to the end); `-` for the largest first. Sorted by start, end
or duration, a listing holds only the jobs that have one."""


class JobFilter(Model):
    """Which jobs a listing, a count or a bulk move is about; `is_part=False` leaves parts out, `parent_id` lists
    one job's parts.

    `status` takes our statuses and other systems' words for them, in any case (listener.status_words).
    `search` is a job id or the start of one (`jb_0193`), else text found in the job's info or error message (any
    case); `metadata` terms are `key=value`, all of which must match. Text and metadata look through the newest
    `SEARCH_WINDOW` jobs that match the other filters.
    """

    status: list[StatusWord] = []
    type: list[JobTypeName] = []
    operation: list[str] = []
    created_by: str | None = None
    parent_id: NonEmpty | None = None
    is_part: bool | None = None
    search: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    metadata: Annotated[list[MetadataTerm], Field(max_length=10)] = []


class JobListQuery(JobFilter):
    """The query of `jobs.list`: its filters, its order and its page."""

    sort: JobSort | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    offset: Annotated[int, Field(ge=0, le=MAX_INT64)] = 0


class JobCountsQuery(Model):
    """The filters of `jobs.counts`: those the status indexes serve (not status, search nor metadata)."""

    type: list[JobTypeName] = []
    operation: list[str] = []
    created_by: str | None = None
    is_part: bool | None = None


class JobCounts(Model):
    """How many jobs there are in each status (the jobs grid's tabs), and in all."""

    created: int = 0
    planning: int = 0
    scheduled: int = 0
    ready: int = 0
    executing: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


MAX_BULK = 1_000
"""The most jobs one bulk call moves."""

BulkAction = Literal["cancel", "retry", "delete"]


class JobBulk(Model):
    """The body of `jobs.bulk`: a move for many jobs, named by their `ids`, or by a `filter` with the number of
    jobs the caller expects it to match (`expected_count`, the confirmation: a different count is refused)."""

    action: BulkAction
    ids: Annotated[list[NonEmpty], Field(min_length=1, max_length=MAX_BULK)] | None = None
    filter: JobFilter | None = None
    expected_count: Annotated[int, Field(ge=0, le=MAX_BULK)] | None = None


class JobBulkRefusal(Model):
    """A job a bulk move left as it was, and why: the error code and message its own move answered."""

    id: str
    code: str
    message: str


class JobBulkResult(Model):
    """What a bulk move did: how many jobs it was about, which changed and which were refused."""

    action: BulkAction
    matched: int
    changed: int
    changed_ids: list[str]
    refused: list[JobBulkRefusal]


MAX_PARTS = 1_000


class JobSplit(Model):
    """The body of `jobs.split`: a number of parts, or each part's data.

    Parts run at once unless `run_in_parallel` is false (then one after another); with `settle`
    `auto` the platform completes or fails the parent when its parts have finished.
    """

    parts: Annotated[int, Field(ge=1, le=MAX_PARTS)] | Annotated[list[dict[str, Any]],
                                                                Field(min_length=1, max_length=MAX_PARTS)]
    run_in_parallel: bool = True
    settle: Literal["listener", "auto"] = "listener"
    attempt: Attempt | None = None


# The slowest rate a type may start at: one start in 11.6 days. Slower is no limit anyone means, and near 0 the
# wait for the next start passes the last date there is (was a 500 on every create of that type).
MIN_RATE = 1e-6


def _job_name(value: str) -> str:
    kind, _, operation = value.partition(":")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", kind) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", operation):
        raise ValueError("must be type:operation, the type a lowercase identifier such as 'workbook' or 'voters', "
                         "as 'workbook:export'")
    return value


class JobLimits(Model):
    """What the platform enforces for every job of one `type:operation` (the body that sets it).

    `max_running`: at most this many ready or executing at once (1: one at a time); the rest
    wait in `scheduled`. `starts_per_second`: at most this many start per second (a token bucket
    holding up to one second's worth; at least `MIN_RATE`). `timeout_seconds`: the timeout of jobs created
    without one. `max_lease_expirations`: how often a job created without its own goes back to ready when
    its worker dies, before it fails. `priority`: the priority of jobs created without one.
    `max_running_per_key` and `starts_per_second_per_key`: the same limits for the jobs of each
    `concurrency_key` (a job without a key has none); keys take turns when slots free up.
    """

    max_running: Annotated[int, Field(ge=1, le=100_000)] | None = None
    starts_per_second: Annotated[float, Field(ge=MIN_RATE, le=100_000)] | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=365 * 86_400)] | None = None
    max_lease_expirations: Annotated[int, Field(ge=0, le=100)] | None = None
    priority: Priority | None = None
    max_running_per_key: Annotated[int, Field(ge=1, le=100_000)] | None = None
    starts_per_second_per_key: Annotated[float, Field(ge=MIN_RATE, le=100_000)] | None = None

    @property
    def per_key(self) -> bool:
        """Whether the settings limit the jobs of each concurrency key."""
        return self.max_running_per_key is not None or self.starts_per_second_per_key is not None

    @property
    def limits_starts(self) -> bool:
        """Whether the settings limit when a job of the type may start (a store admits it against them)."""
        return self.max_running is not None or self.starts_per_second is not None or self.per_key


class JobSettings(JobLimits):
    """The limits and timeout of one `type:operation`, named by `job`."""

    job: Annotated[str, AfterValidator(_job_name)]


class JobAttach(Model):
    """The body of `jobs.attach_file`."""

    file_id: Annotated[str, Field(min_length=1)]
    role: Literal["input", "output", "error_report"]


MAX_DATA_ROWS = 10_000


class JobData(Model):
    """The body of `jobs.write_data`: result rows, each an object of column to value."""

    rows: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_DATA_ROWS)]


class JobCancel(Model):
    """The body of `jobs.cancel`."""

    info: str | None = None
