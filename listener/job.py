"""A job (DESIGN.md §2): `Job`, its status, type, trigger and mode, its error, retry policy, parts and files.

The bodies of the calls that create and move a job are in `jobcalls.py`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PrivateAttr, computed_field, model_validator

from listener import status_words
from listener.outcomes import Outcome
from listener.wire import Model

if TYPE_CHECKING:
    from listener.api import Api

__all__ = [
    "DEFAULT_MAX_LEASE_EXPIRATIONS",
    "DedupeResult",
    "Job",
    "JobError",
    "JobFile",
    "JobMode",
    "JobParts",
    "JobStatus",
    "JobTrigger",
    "JobType",
    "JobTypeName",
    "RetryPolicy",
]


class JobStatus(enum.StrEnum):
    """Where a job is in its life (DESIGN.md §2)."""

    CREATED = "created"
    PLANNING = "planning"
    SCHEDULED = "scheduled"
    READY = "ready"
    EXECUTING = "executing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED})


class JobType(enum.StrEnum):
    """The five domains a job can work on. A job's type is one of these or any name of its own (JobTypeName)."""

    SPACE = "space"
    WORKBOOK = "workbook"
    SHEET = "sheet"
    FILE = "file"
    DOCUMENT = "document"


class JobTrigger(enum.StrEnum):
    """`immediate` jobs become ready at once; `manual` ones wait for `jobs.execute`."""

    MANUAL = "manual"
    IMMEDIATE = "immediate"


class JobMode(enum.StrEnum):
    """How the UI shows a running job."""

    FOREGROUND = "foreground"
    BACKGROUND = "background"
    TOOLBAR_BLOCKING = "toolbarBlocking"


DedupeResult = Literal["created", "deduplicated", "debounced"]
"""What a create with a `dedupe_key` did (Job.dedupe)."""


JobTypeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
"""A job's type: a domain (JobType) or a lowercase identifier of its own, such as `voters` or `import_voters`."""


DEFAULT_MAX_LEASE_EXPIRATIONS = 3
"""How often a job goes back to ready after its worker died, by default, before it fails."""


class JobError(Model):
    """Why a job (or its last attempt) failed. `kind` separates a handler's error from a timeout or a lost worker."""

    message: str
    kind: Literal["error", "timeout", "lease_expired", "invalid_input"] = "error"
    retryable: bool = False
    attempt: int = 0


class RetryPolicy(Model):
    """How often a job is tried, and how long it waits between tries (exponential backoff with jitter).

    The wait before attempt n+1 is `min(cap, base * factor**(n-1))`, moved by up to ±`jitter` of itself.
    """

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    base_seconds: Annotated[float, Field(ge=0, le=86_400)] = 1.0
    factor: Annotated[float, Field(ge=1, le=10)] = 2.0
    cap_seconds: Annotated[float, Field(ge=0, le=7 * 86_400)] = 300.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.1

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based); `rand` in [0, 1) picks the jitter."""
        wait = min(self.cap_seconds, self.base_seconds * self.factor ** max(attempt - 1, 0))
        return max(0.0, wait * (1 + self.jitter * (2 * rand - 1)))


class JobFile(Model):
    """A file attached to a job: what it read (`input`), made (`output`) or reported (`error_report`)."""

    file_id: str
    role: Literal["input", "output", "error_report"]
    name: str | None = None


class JobParts(Model):
    """A split job's parts, as the parent keeps count of them."""

    total: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    run_in_parallel: bool = True
    settle: Literal["listener", "auto"] = "listener"
    completed_at: datetime | None = None
    """When every part had finished and job:parts-completed fired."""

    @property
    def ended(self) -> int:
        return self.completed + self.failed + self.cancelled


_COMPUTED = frozenset({"job", "fiddlerStatus"})


class Job(Model):
    """A unit of long work and everything known about it.

    `waiting_for` says why a `scheduled` job waits for its type's limit (`concurrency` or `rate`) or its
    key's (`key_concurrency` or `key_rate`: the limit per `concurrency_key`). Among ready and waiting jobs,
    a higher `priority` goes first.
    A part of a split job has `is_part`, its 1-based `part`, its `part_data` and `parent_id`;
    the parent counts its parts in `parts`.
    """

    id: str
    type: str
    operation: str
    source: str | None = None
    destination: str | None = None
    trigger: JobTrigger = JobTrigger.IMMEDIATE
    status: JobStatus = JobStatus.CREATED
    progress: int = 0
    processed: int | None = None
    total: int | None = None
    info: str | None = None
    estimated_completion_at: datetime | None = None
    mode: JobMode = JobMode.FOREGROUND
    managed: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] = Field(default_factory=dict)
    outcome: Outcome | None = None
    error: JobError | None = None
    attempt: int = 0
    max_attempts: int = 1
    retry: RetryPolicy | None = None
    next_attempt_at: datetime | None = None
    lease_seconds: int = 60
    lease_expires_at: datetime | None = None
    lease_expirations: int = 0
    """How often a worker died holding the job (its lease ran out) and the job went back to ready."""
    max_lease_expirations: int = DEFAULT_MAX_LEASE_EXPIRATIONS
    """How often it may: once more, and the job fails (kind `lease_expired`), so a job that kills its workers ends."""
    timeout_seconds: int = 86_400
    run_at: datetime | None = None
    predecessor_ids: list[str] = Field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    waiting_for: Literal["concurrency", "rate", "key_concurrency", "key_rate"] | None = None
    priority: int = 0
    """Higher runs first among the ready and waiting jobs of its type; FIFO within one priority."""
    concurrency_key: str | None = None
    """The key (a tenant, say) whose per-key limits the job counts against (`jobs.configure(max_running_per_key=)`)."""
    is_part: bool = False
    part: int | None = None
    part_data: dict[str, Any] | None = None
    parent_id: str | None = None
    parts: JobParts | None = None
    dedupe_key: str | None = None
    """The key of `jobs.create(dedupe_key=)`: while this job waits to start, a create with it finds this job."""
    dedupe_scope: str | None = None
    """Whose keys `dedupe_key` is among: None, the type's one scope (admins, agents, the in-process Api); a
    member's name, that member's own, so one member's key never finds another's job."""
    debounce_seconds: float | None = None
    """The debounce window it was created with: each create with its key while it waits pushes its start back."""
    retry_of: str | None = None
    """The job whose failed items this one runs again (jobs.retry_failed_items); its input's `items` are those."""
    files: list[JobFile] = Field(default_factory=list)
    data_rows: int = 0
    """How many result rows the job wrote (jobs.write_data); its data.csv, until it expires."""
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome_acknowledged_at: datetime | None = None

    _api: Api | None = PrivateAttr(default=None)
    _dedupe: DedupeResult | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        # `job` and `fiddlerStatus` are derived from other fields; accept them back from our own JSON.
        if isinstance(data, dict) and ("job" in data or "fiddlerStatus" in data):
            data = {k: v for k, v in data.items() if k not in _COMPUTED}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def job(self) -> str:
        """The job's name, `type:operation`, as listeners filter on it."""
        return f"{self.type}:{self.operation}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fiddler_status(self) -> Literal["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"]:
        """The status in Fiddler's words (DESIGN.md §2); `jobs.list(status=...)` takes it back."""
        return status_words.fiddler_status(self.status.value, self.attempt)  # type: ignore[return-value]

    @property
    def dedupe(self) -> DedupeResult | None:
        """What a create with a `dedupe_key` did: `created` a job, or found one waiting with the key and
        `deduplicated` (returned it as it was) or `debounced` (replaced its input, pushed its start back).

        None on a job that came from anything else (a create without a key, get, list, refresh).
        """
        return self._dedupe

    def noted(self, dedupe: DedupeResult | None) -> Job:
        """A copy of this job that remembers what the create that returned it did (`dedupe`).

        A copy, as a store may hold this very object as its job's last state.
        """
        copy = self.model_copy()
        copy._dedupe = dedupe
        return copy

    @property
    def error_message(self) -> str | None:
        """The failure's message, or None (Fiddler's `job.error_message`)."""
        return self.error.message if self.error else None

    def __eq__(self, other: object) -> bool:
        # Two copies of the same job are equal whichever Api they were fetched through.
        if not isinstance(other, Job):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def bind(self, api: Api) -> Job:
        """Remember the Api this job came from, for `refresh()` and `wait()`."""
        self._api = api
        return self

    async def refresh(self) -> Job:
        """Fetch the job again into this object, and return it (Fiddler's `job.refresh()`).

        As in Fiddler, `job` itself changes, so `while job.status in (...): await job.refresh()` polls.
        """
        return self._take(await self._bound().jobs.get(self.id))

    async def wait(self, timeout: float | None = None) -> Job:
        """Wait until the job is terminal, update this object to its end, and return it (Fiddler's `job.wait()`).

        `await job.wait()` then `job.status` is the end it came to; TimeoutError if `timeout` seconds pass first.
        """
        return self._take(await self._bound().jobs.wait(self.id, timeout=timeout))

    def _take(self, fresh: Job) -> Job:
        # The fresh copy was built by this transport from the same model: its fields replace ours as they are.
        self.__dict__.update(fresh.__dict__)
        object.__setattr__(self, "__pydantic_fields_set__", set(fresh.model_fields_set))
        return self

    def _bound(self) -> Api:
        if self._api is None:
            raise RuntimeError("This job is not bound to an Api; get it through api.jobs to refresh or wait.")
        return self._api
