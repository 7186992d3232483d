"""Schedules' wire models: a job created at every tick of a cron expression, in a time zone.

A schedule is made with `api.schedules.create(job="workbook:export", cron="0 3 * * *",
timezone="Europe/Berlin", input=..., source=...)`, read with `get` / `list`, changed with `update`,
`pause` and `resume`, and removed with `delete`. The platform creates its jobs (listener/platform/schedules.py):
one per tick, across replicas and restarts; a tick missed while no platform ran runs once, late.

Cron expressions are the five fields of Debian's cron (minute hour day-of-month month day-of-week, with
`*`, lists, ranges, steps, names, `L` and `#`) or one of @yearly, @annually, @monthly, @weekly, @daily,
@midnight, @hourly; they are read by cronsim, never here. Wall-clock times follow the schedule's zone,
and so do its daylight-saving changes: a time that does not exist that day (02:30 when clocks spring
from 02:00 to 03:00) runs at the first minute after the gap (03:00), once; a time that happens twice
(02:30 when clocks fall back) runs at its first occurrence (summer time), once. Expressions that name
no hour (`*/15 * * * *`) follow elapsed time instead: every 15 minutes, through both passes of a repeated hour.
"""

from __future__ import annotations

import abc
import builtins
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, Field, WithJsonSchema, field_validator

from listener.errors import Invalid
from listener.job import JobTypeName
from listener.types import UNSET
from listener.wire import Model, NonEmpty, Operation, parse

__all__ = [
    "NICKNAMES",
    "Schedule",
    "ScheduleCreate",
    "ScheduleUpdate",
    "SchedulesApi",
    "describe",
    "invalid_field",
    "next_tick",
    "upcoming",
    "zone",
]

NICKNAMES: dict[str, str] = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
"""The @-names Debian's cron takes (all but @reboot), as the five-field expressions they stand for."""

_JOB = re.compile(r"^([^:]*):(.*)$")


def _fields(cron: str) -> str:
    return NICKNAMES.get(cron.strip().lower(), cron)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (`Europe/Berlin`, `UTC`), or ValueError saying it is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone, such as UTC or Europe/Berlin") from None


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of `cron` in `timezone` strictly after `after`, in UTC.

    Raises ValueError for an expression cronsim refuses, or one that names no time in the next 50 years.
    """
    tz = zone(timezone)
    try:
        ticks = CronSim(_fields(cron), after.astimezone(tz))
        # Every tick is checked against the instant, not the wall clock: from the second pass of a repeated
        # hour, the wall clock's next 02:45 can be the first pass's, which is already over.
        for tick in ticks:
            if tick > after:
                return tick.astimezone(UTC)
    except CronSimError as exc:
        raise ValueError(f"{cron!r} is not a cron expression: {exc}") from None
    raise ValueError(f"{cron!r} names no time in the next 50 years")


def upcoming(cron: str, timezone: str, first: datetime, count: int = 5) -> list[datetime]:
    """`first` and the ticks after it, `count` in all (fewer if the expression runs out)."""
    ticks = [first]
    while len(ticks) < count:
        try:
            ticks.append(next_tick(cron, timezone, ticks[-1]))
        except ValueError:
            break
    return ticks


def describe(cron: str) -> str:
    """The expression in words, as cronsim says it: "At 03:00 every day"."""
    return CronSim(_fields(cron), datetime.now(UTC)).explain()


def _cron(value: str) -> str:
    fields = _fields(value).split()
    if len(fields) != 5:
        raise ValueError(f"{value!r} is not a cron expression: it needs five fields (minute hour day-of-month "
                         "month day-of-week), e.g. '0 3 * * *', or one of " + ", ".join(NICKNAMES))
    next_tick(value, "UTC", datetime(2000, 1, 1, tzinfo=UTC))
    return value.strip()


def _timezone(value: str) -> str:
    zone(value)
    return value


def _job(value: str) -> str:
    match = _JOB.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not domain:operation, e.g. workbook:export")
    parse(_JobName, {"domain": match.group(1), "operation": match.group(2)}, what="job")
    return value


class _JobName(Model):
    domain: JobTypeName
    operation: Operation


CronExpression = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_cron), WithJsonSchema({
    "type": "string", "description": "Five cron fields (minute hour day-of-month month day-of-week) or @daily, "
    "@hourly, ...", "examples": ["0 3 * * *", "*/15 * * * 1-5", "@daily"]})]
TimeZone = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_timezone), WithJsonSchema({
    "type": "string", "description": "An IANA time zone.", "examples": ["UTC", "Europe/Berlin"]})]
JobName = Annotated[str, Field(min_length=3, max_length=170), AfterValidator(_job), WithJsonSchema({
    "type": "string", "pattern": r"^[a-z][a-z0-9_]*:[A-Za-z0-9_.\-]+$", "description": "domain:operation",
    "examples": ["workbook:export"]})]


class ScheduleCreate(Model):
    """The arguments of `schedules.create`."""

    job: JobName
    cron: CronExpression
    timezone: TimeZone = "UTC"
    input: dict[str, Any] = Field(default_factory=dict)
    source: NonEmpty | None = None
    paused: bool = False


class ScheduleUpdate(Model):
    """The arguments of `schedules.update`: only the fields given change (`source: null` clears it)."""

    job: JobName | None = None
    cron: CronExpression | None = None
    timezone: TimeZone | None = None
    input: dict[str, Any] | None = None
    source: NonEmpty | None = None

    @field_validator("job", "cron", "timezone", "input")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only on values given (defaults are not validated): null is refused, leaving the field out is not.
        if value is None:
            raise ValueError("may not be null (only source may be cleared)")
        return value


class Schedule(Model):
    """A job created at each tick of `cron` in `timezone`, with an id prefixed `sc_`."""

    id: str
    job: str
    """The job each tick creates, `domain:operation`."""
    cron: str
    timezone: str
    description: str
    """The expression in words: "At 03:00 every day"."""
    input: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    paused: bool = False
    next_run_at: datetime | None = None
    """The next tick (None while paused); a platform that was down makes it as soon as it is back."""
    upcoming: list[datetime] = Field(default_factory=list)
    """The next few ticks, from `nextRunAt` (empty while paused)."""
    last_run_at: datetime | None = None
    """The tick the last job was created for."""
    last_job_id: str | None = None
    last_error: str | None = None
    """Why the last tick made no job (its source was deleted, say); cleared by the next one that does."""
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime


class SchedulesApi(abc.ABC):
    """`api.schedules` on either transport: each call's signature is written here once.

    The in-process service (listener/platform/schedules.py) and the HTTP client (listener/client.py)
    implement the underscored methods, which get the arguments already validated. Managing schedules
    takes an admin over HTTP; anyone signed in may read them.
    """

    async def create(self, *, job: str, cron: str, timezone: str = "UTC", input: dict[str, Any] | None = None,
                     source: str | None = None, paused: bool = False) -> Schedule:
        """Create a job `job` ("domain:operation") at each tick of `cron` in `timezone` (schedule:created).

        Raises Invalid naming the field for a bad job name, cron expression, time zone, input or source.
        """
        body = {"job": job, "cron": cron, "timezone": timezone, "input": input or {}, "source": source,
                "paused": paused}
        return await self._create(parse(ScheduleCreate, body, what="schedule"))

    async def list(self) -> builtins.list[Schedule]:
        """Every schedule, oldest first, with its next run times."""
        return await self._list()

    async def get(self, schedule_id: str) -> Schedule:
        """One schedule (NotFound once it is deleted)."""
        return await self._get(schedule_id)

    async def update(self, schedule_id: str, *, job: str = UNSET, cron: str = UNSET,  # type: ignore[assignment]
                     timezone: str = UNSET, input: dict[str, Any] = UNSET,  # type: ignore[assignment]
                     source: str | None = UNSET) -> Schedule:  # type: ignore[assignment]
        """Change what a schedule makes or when; only what is given changes (schedule:updated).

        A new cron expression or time zone moves the next run to its first tick from now.
        """
        values: dict[str, object] = {"job": job, "cron": cron, "timezone": timezone, "input": input, "source": source}
        given = {k: v for k, v in values.items() if v is not UNSET}
        return await self._update(schedule_id, parse(ScheduleUpdate, given, what="schedule"))

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop making jobs until `resume`; the ticks in between are skipped (schedule:updated)."""
        return await self._pause(schedule_id)

    async def resume(self, schedule_id: str) -> Schedule:
        """Make jobs again, from the first tick after now (schedule:updated)."""
        return await self._resume(schedule_id)

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule (schedule:deleted); the jobs it made are kept."""
        await self._delete(schedule_id)

    @abc.abstractmethod
    async def _create(self, spec: ScheduleCreate) -> Schedule: ...

    @abc.abstractmethod
    async def _list(self) -> builtins.list[Schedule]: ...

    @abc.abstractmethod
    async def _get(self, schedule_id: str) -> Schedule: ...

    @abc.abstractmethod
    async def _update(self, schedule_id: str, changes: ScheduleUpdate) -> Schedule: ...

    @abc.abstractmethod
    async def _pause(self, schedule_id: str) -> Schedule: ...

    @abc.abstractmethod
    async def _resume(self, schedule_id: str) -> Schedule: ...

    @abc.abstractmethod
    async def _delete(self, schedule_id: str) -> None: ...


def invalid_field(field: str, message: str) -> Invalid:
    """Invalid naming one field of a schedule, as parse() would."""
    return Invalid(f"Invalid schedule: {field}: {message}", details=[{"field": field, "message": message}])
