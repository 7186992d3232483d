"""Wire models: what crosses a boundary (the Api, the store, HTTP) as JSON.

Python names are snake_case; the JSON is camelCase, as Flatfile's API is. Input
models forbid unknown fields so a typo is named instead of silently ignored.
"""

from __future__ import annotations

import enum
import os
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    computed_field,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from listener import status_words
from listener.errors import Invalid

if TYPE_CHECKING:
    from listener.api import Api

__all__ = [
    "Action",
    "ActionConstraint",
    "ActionMessage",
    "Commit",
    "Document",
    "DocumentCreate",
    "DocumentUpdate",
    "Event",
    "EventContext",
    "File",
    "FileRef",
    "InputField",
    "InputForm",
    "Job",
    "JobAck",
    "JobAttach",
    "JobCancel",
    "JobCheckpoint",
    "JobComplete",
    "JobCreate",
    "JobData",
    "JobError",
    "JobErrors",
    "JobFail",
    "JobFile",
    "JobHeartbeat",
    "JobItemError",
    "JobLimits",
    "JobListQuery",
    "JobMode",
    "JobParts",
    "JobSettings",
    "JobSplit",
    "JobStatus",
    "JobTrigger",
    "JobType",
    "JobUpdate",
    "Model",
    "NewJobItemError",
    "Next",
    "Outcome",
    "OutcomeTrigger",
    "Page",
    "Record",
    "RetryPolicy",
    "Sheet",
    "SheetConfig",
    "SheetField",
    "Space",
    "SpaceCreate",
    "Workbook",
    "WorkbookCreate",
    "job_spec",
    "new_id",
    "parse",
    "parse_strict_json",
    "refuse_nul",
]


class Model(BaseModel):
    """Base for every wire model: camelCase JSON, snake_case Python, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )


# -- jobs ---------------------------------------------------------------------


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


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def _safe_url(url: str) -> str:
    # Browsers drop tabs and newlines inside a scheme ("java\tscript:"), so any
    # whitespace or control character is refused rather than normalised.
    if not url or _CONTROL_OR_SPACE.search(url):
        raise ValueError("must be a non-empty URL without spaces or control characters")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("", "http", "https"):
        raise ValueError(f"must be an http(s) or relative URL, not {scheme}:")
    return url


SafeUrl = Annotated[str, AfterValidator(_safe_url)]
NonEmpty = Annotated[str, Field(min_length=1)]
Operation = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
JobTypeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
"""A job's type: a domain (JobType) or a lowercase identifier of its own, such as `voters` or `import_voters`."""


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


class NextId(Model):
    """Navigate inside the app to an object (`path` and `query` refine where)."""

    type: Literal["id"]
    id: NonEmpty
    path: str | None = None
    query: str | None = None
    label: str | None = None


class NextUrl(Model):
    """Open a link in a new tab."""

    type: Literal["url"]
    url: SafeUrl
    label: str | None = None


class NextDownload(Model):
    """Download one file from a URL."""

    type: Literal["download"]
    url: SafeUrl
    file_name: str | None = None
    label: str | None = None


class FileRef(Model):
    file_id: NonEmpty


class NextFiles(Model):
    """Download several files stored on the platform."""

    type: Literal["files"]
    files: Annotated[list[FileRef], Field(min_length=1)]
    label: str | None = None


class NextSnapshot(Model):
    """Go to a snapshot of a sheet (`api.snapshots.create`); `sheet_id` may be left out: the snapshot knows it."""

    type: Literal["snapshot"]
    snapshot_id: NonEmpty
    sheet_id: NonEmpty | None = None
    label: str | None = None


class NextView(Model):
    """Go to a sheet with some columns hidden."""

    type: Literal["view"]
    sheet_id: NonEmpty
    hidden_columns: list[str] = []
    label: str | None = None


class NextRetry(Model):
    """Run the job again."""

    type: Literal["retry"]
    label: str | None = None


class NextWait(Model):
    """Keep the dialog open with no button (the UI may fade it or throw confetti)."""

    type: Literal["wait"]
    fade: bool = False
    confetti: bool = False
    label: str | None = None


class NextClearFilters(Model):
    """Clear the filters of a sheet's view (the sheet of the job when left out)."""

    type: Literal["clear_filters"]
    sheet_id: str | None = None
    label: str | None = None


Next = Annotated[
    NextId | NextUrl | NextDownload | NextFiles | NextSnapshot | NextView | NextRetry | NextWait | NextClearFilters,
    Field(discriminator="type"),
]


class OutcomeTrigger(Model):
    """Whether the `next` button waits for a click or fires by itself."""

    type: Literal["manual", "automatic", "automatic_silent"] = "manual"


class Outcome(Model):
    """What the person sees when a job ends: a message and, optionally, what to do next."""

    message: str | None = None
    heading: str | None = None
    acknowledge: bool = False
    button_text: str | None = None
    hide_default_button: bool = False
    trigger: OutcomeTrigger | None = None
    next: Next | None = None


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

    `waiting_for` says why a `scheduled` job waits for its type's limit (`concurrency` or `rate`).
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
    metadata: dict[str, Any] = {}
    input: dict[str, Any] = {}
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
    predecessor_ids: list[str] = []
    checkpoint: dict[str, Any] | None = None
    waiting_for: Literal["concurrency", "rate"] | None = None
    is_part: bool = False
    part: int | None = None
    part_data: dict[str, Any] | None = None
    parent_id: str | None = None
    parts: JobParts | None = None
    files: list[JobFile] = []
    data_rows: int = 0
    """How many result rows the job wrote (jobs.write_data); its data.csv, until it expires."""
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome_acknowledged_at: datetime | None = None

    _api: Api | None = PrivateAttr(default=None)

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


# -- actions ------------------------------------------------------------------


class ActionMessage(Model):
    type: Literal["error", "info"] = "info"
    content: NonEmpty


class ActionConstraint(Model):
    """`hasData`: the sheet or workbook must have records; the others are shown by the UI."""

    type: Literal["hasAllValid", "hasSelection", "hasData"]


class InputOption(Model):
    value: str | int | float | bool
    label: str | None = None


class InputFieldConfig(Model):
    options: list[InputOption] = []


class InputConstraint(Model):
    type: Literal["required"]


class InputField(Model):
    """One field of an action's input form; its value lands in `job.input[key]`."""

    key: NonEmpty
    label: NonEmpty
    type: Literal["string", "textarea", "number", "boolean", "enum"] = "string"
    description: str | None = None
    default_value: Any = None
    config: InputFieldConfig | None = None
    constraints: list[InputConstraint] = []


class InputForm(Model):
    type: Literal["simple"] = "simple"
    fields: list[InputField]


class Action(Model):
    """A button mounted on a workbook, sheet, file or document that starts `domain:operation`."""

    operation: Operation
    label: NonEmpty
    description: str | None = None
    mode: JobMode = JobMode.FOREGROUND
    primary: bool = False
    confirm: bool = False
    tooltip: str | None = None
    messages: list[ActionMessage] = []
    constraints: list[ActionConstraint] = []
    input_form: InputForm | None = None


# -- domains ------------------------------------------------------------------


class Space(Model):
    """A place for workbooks; its `namespace` scopes listeners (`listener.namespace("red")`)."""

    id: str
    name: str
    namespace: str | None = None
    metadata: dict[str, Any] = {}
    created_at: datetime


class SheetField(Model):
    """A column of a sheet."""

    key: NonEmpty
    type: Literal["string", "number", "boolean", "date", "enum", "reference"] = "string"
    label: str | None = None
    description: str | None = None


class SheetConfig(Model):
    """A sheet as given to `workbooks.create`; the slug defaults to the name, slugified."""

    name: NonEmpty
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")] | None = None
    fields: list[SheetField] = []
    actions: list[Action] = []


class Sheet(Model):
    id: str
    workbook_id: str
    name: str
    slug: str
    fields: list[SheetField]
    actions: list[Action] = []
    created_at: datetime


class Workbook(Model):
    id: str
    name: str
    space_id: str | None = None
    sheets: list[Sheet] = []
    actions: list[Action] = []
    labels: list[str] = []
    metadata: dict[str, Any] = {}
    created_at: datetime


class Record(Model):
    id: str
    sheet_id: str
    values: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class File(Model):
    """An uploaded file: its bytes are in the platform's file storage, served under `name`.

    `name` is the uploaded name made safe (no path, no control characters, at most 255 bytes);
    `actions` mounted on it trigger `file:<operation>` jobs whose source is the file.
    """

    id: str
    name: str
    size: int
    mime_type: str
    sha256: str
    space_id: str | None = None
    actions: list[Action] = []
    metadata: dict[str, Any] = {}
    created_by: str | None = None
    readers: list[str] = []
    """Users who may read it besides its creator: those whose jobs it is attached to."""
    created_at: datetime


class Document(Model):
    """A page of Markdown in a space, with actions (Flatfile's documents)."""

    id: str
    title: str
    body: str = ""
    space_id: str | None = None
    actions: list[Action] = []
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null: leave it out to keep the current value")
    return value


def _without_null(schema: dict[str, Any]) -> None:
    # The fields are optional (None in Python: not given) but never null on the wire: so says the schema.
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(o for o in options if o.get("type") != "null"))
        prop.pop("default", None)


DocumentTitle = Annotated[str, Field(min_length=1, max_length=500)]
DocumentBody = Annotated[str, Field(max_length=1_000_000)]


class DocumentCreate(Model):
    """The body of `documents.create`: the body is Markdown, stored as given (nothing renders it on the server)."""

    title: DocumentTitle
    body: DocumentBody = ""
    space_id: str | None = None
    actions: list[Action] = []


class DocumentUpdate(Model):
    """The body of `documents.update`: only the fields given (`model_fields_set`) change; none may be null.

    An empty body or action list clears it; a title cannot be cleared.
    """

    model_config = ConfigDict(json_schema_extra=_without_null)

    title: Annotated[DocumentTitle | None, BeforeValidator(_not_null)] = None
    body: Annotated[DocumentBody | None, BeforeValidator(_not_null)] = None
    actions: Annotated[list[Action] | None, BeforeValidator(_not_null)] = None


class Commit(Model):
    """One change to a sheet's records; each emits `commit:created`."""

    id: str
    sheet_id: str
    workbook_id: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    created_by: str | None = None
    created_at: datetime


# -- events -------------------------------------------------------------------


class EventContext(Model):
    """The ids an event is about; filters match on these."""

    job_id: str | None = None
    job: str | None = None
    domain: str | None = None
    operation: str | None = None
    space_id: str | None = None
    workbook_id: str | None = None
    sheet_id: str | None = None
    sheet_slug: str | None = None
    file_id: str | None = None
    document_id: str | None = None
    commit_id: str | None = None
    snapshot_id: str | None = None
    actor_id: str | None = None
    namespace: str | None = None


class Event(Model):
    """Something that happened, as stored in the event log and handed to listeners.

    During a dispatch an event also carries `api` (to act on the platform),
    `cache` (shared by the handlers of this dispatch) and `after_all` (callbacks
    that run once every handler of this dispatch has finished).
    """

    __slots__ = ("_wire",)

    id: str
    seq: int
    topic: str
    context: EventContext
    payload: dict[str, Any] = {}
    created_at: datetime

    _api: Api | None = PrivateAttr(default=None)
    _cache: dict[str, Any] | None = PrivateAttr(default=None)
    _after_all: list[Callable[[], Any]] | None = PrivateAttr(default=None)

    @classmethod
    def trusted(cls, *, id: str, seq: int, topic: str, context: EventContext, payload: dict[str, Any],
                created_at: datetime, api: Api | None = None, cache: dict[str, Any] | None = None,
                after_all: list[Callable[[], Any]] | None = None) -> Event:
        """An event from values the platform itself made, without validation.

        What `model_construct` does, minus its generic work (a quarter of the time): the store builds
        one per event it appends, and the runner one per dispatch, so this is the hottest constructor.
        """
        event = _new_object(cls)
        _set_attribute(event, "__dict__", {"id": id, "seq": seq, "topic": topic, "context": context,
                                           "payload": payload, "created_at": created_at})
        _set_attribute(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))
        _set_attribute(event, "__pydantic_extra__", None)
        _set_attribute(event, "__pydantic_private__", {"_api": api, "_cache": cache, "_after_all": after_all})
        _set_attribute(event, "_wire", None)  # set, so that to_json's lookup never takes the exception path
        return event

    def to_json(self) -> str:
        """The event as JSON, serialized once: the store writes it and every stream socket sends it.

        Events are not changed once appended, so the first serialization stands for the rest. It is
        kept in a slot, not a field or private attribute, so equality and copies never see it.
        """
        text: str | None = getattr(self, "_wire", None)
        if text is None:
            text = self.model_dump_json()
            _set_attribute(self, "_wire", text)
        return text

    def for_dispatch(self, api: Api) -> Event:
        """A copy of this event for one dispatch, with its own cache and after-all list."""
        return Event.trusted(id=self.id, seq=self.seq, topic=self.topic, context=self.context, payload=self.payload,
                             created_at=self.created_at, api=api, cache={}, after_all=[])

    @property
    def api(self) -> Api:
        if self._api is None:
            raise RuntimeError("This event is not being dispatched, so it has no api.")
        return self._api

    @property
    def cache(self) -> dict[str, Any]:
        """A dict shared by every handler of this dispatch (Flatfile's `event.cache`)."""
        if self._cache is None:
            self._cache = {}
        return self._cache

    def after_all(self, fn: Callable[[], Any]) -> None:
        """Run `fn` (sync or async) once every handler of this dispatch has finished."""
        if self._after_all is None:
            self._after_all = []
        self._after_all.append(fn)


_EVENT_FIELDS = frozenset(Event.model_fields)
_new_object = object.__new__
_set_attribute = object.__setattr__


# -- inputs -------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


_random = random.Random(os.urandom(16))


def new_id(prefix: str) -> str:
    """A new object id such as `jb_0193f2a...`; the prefix tells the kind of object.

    Ids start with the time in milliseconds, so they sort by creation and keep
    index inserts at the end; 48 random bits follow. Ids are names, not secrets
    (bearer tokens are), so a fast non-cryptographic generator is enough.
    """
    return f"{prefix}_{time.time_ns() // 1_000_000:011x}{_random.getrandbits(48):012x}"


def parse(model: type[M], data: Any, *, what: str | None = None) -> M:
    """Validate `data` as `model`, turning a ValidationError into `Invalid` naming each field."""
    refuse_nul(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, what or model.__name__) from None


def refuse_nul(data: Any, where: str = "") -> None:
    """Refuse text containing the NUL character anywhere in `data` (keys too), naming where it is.

    PostgreSQL cannot store NUL in text or JSON; refusing it for every backend keeps them alike.
    """
    if where or _has_nul(data):  # the paths are worked out only once there is something to name
        _name_nul(data, where)


def _has_nul(data: Any) -> bool:
    if type(data) is str:
        return "\x00" in data
    if isinstance(data, dict):
        for key, value in data.items():
            if ("\x00" in key if type(key) is str else _has_nul(key)) or (
                    type(value) is not int and value is not None and _has_nul(value)):
                return True
        return False
    if isinstance(data, list | tuple):
        for value in data:
            if _has_nul(value):
                return True
        return False
    return isinstance(data, str) and "\x00" in data  # a str subclass


def _name_nul(data: Any, where: str) -> None:
    if isinstance(data, str):
        if "\x00" in data:
            field = where or "(body)"
            raise Invalid(f"{field}: text must not contain the NUL character.",
                          details=[{"field": field, "message": "contains NUL"}])
    elif isinstance(data, dict):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            _name_nul(key, path)
            _name_nul(value, path)
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            _name_nul(value, f"{where}.{i}" if where else str(i))


def parse_strict_json(model: type[M], raw: bytes, *, what: str | None = None) -> M:
    """Validate JSON text as `model` strictly, as its JSON Schema reads it: `0` is not `false`, `"5"` is not `5`.

    How the HTTP API reads bodies, so that it takes what its OpenAPI document says and nothing else.
    """
    try:
        parsed = model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _invalid(exc, what or model.__name__) from None
    if b"\\u0000" in raw:
        refuse_nul(parsed.model_dump(by_alias=True))
    return parsed


def _invalid(exc: ValidationError, what: str) -> Invalid:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return Invalid(f"Invalid {what}: {summary}", details=problems)


Progress = Annotated[int, Field(ge=0, le=100)]

# Offsets and event positions are stored and compared as 64-bit integers (SQLite INTEGER, PostgreSQL BIGINT).
MAX_INT64 = 2**63 - 1

# A date given as input is a moment (with its UTC offset; a time without one names no moment) between these two,
# so that what the platform does with it still fits in a datetime, which ends with the year 9999: a job's deadline
# is its `runAt` plus its timeout (at most a year), and a date is compared and stored in UTC (a day's room at the
# bottom for an offset).
MIN_DATE = datetime(1, 1, 2, tzinfo=UTC)
MAX_DATE = datetime(9998, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
_DATES = " to ".join(d.isoformat(timespec="seconds").replace("+00:00", "Z") for d in (MIN_DATE, MAX_DATE))


def _in_range(value: datetime) -> datetime:
    if not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(f"must be a date from {_DATES}")
    return value


InputDate = Annotated[AwareDatetime, AfterValidator(_in_range), WithJsonSchema(
    {"type": "string", "format": "date-time", "description": f"A date-time with its UTC offset, from {_DATES}."})]


class JobCreate(Model):
    """The body of `jobs.create`."""

    type: JobTypeName
    operation: Operation
    source: NonEmpty | None = None
    destination: str | None = None
    trigger: JobTrigger = JobTrigger.IMMEDIATE
    mode: JobMode = JobMode.FOREGROUND
    managed: bool = False
    info: str | None = None
    metadata: dict[str, Any] = {}
    input: dict[str, Any] = {}
    retry: RetryPolicy | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=365 * 86_400)] = 86_400
    lease_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60
    max_lease_expirations: Annotated[int, Field(ge=0, le=100)] = DEFAULT_MAX_LEASE_EXPIRATIONS
    run_at: InputDate | None = None
    predecessor_ids: Annotated[list[NonEmpty], Field(max_length=100)] = []


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


class JobListQuery(Model):
    """The filters of `jobs.list`; `is_part=False` leaves parts out, `parent_id` lists one job's parts.

    `status` takes our statuses and other systems' words for them, in any case (listener.status_words).
    """

    status: list[StatusWord] = []
    type: list[JobTypeName] = []
    operation: list[str] = []
    created_by: str | None = None
    parent_id: NonEmpty | None = None
    is_part: bool | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    offset: Annotated[int, Field(ge=0, le=MAX_INT64)] = 0


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
    its worker dies, before it fails.
    """

    max_running: Annotated[int, Field(ge=1, le=100_000)] | None = None
    starts_per_second: Annotated[float, Field(ge=MIN_RATE, le=100_000)] | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=365 * 86_400)] | None = None
    max_lease_expirations: Annotated[int, Field(ge=0, le=100)] | None = None


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


class Page(Model, Generic[M]):
    """One page of a listing and how many there are in all."""

    items: list[M]
    total: int
    limit: int
    offset: int


class WorkbookCreate(Model):
    """The body of `workbooks.create`."""

    name: NonEmpty
    space_id: str | None = None
    sheets: list[SheetConfig] = []
    actions: list[Action] = []
    labels: list[str] = []
    metadata: dict[str, Any] = {}


class SpaceCreate(Model):
    """The body of `spaces.create`."""

    name: NonEmpty
    namespace: str | None = None
    metadata: dict[str, Any] = {}
