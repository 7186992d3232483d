"""Schedules: a job created at every tick of a cron expression, once per tick across replicas and restarts.

Each schedule's row keeps its next tick (`next_run_at`, indexed; none while paused). The runner, started by
the platform beside its scheduler and reading the same clock, sweeps the schedules whose tick has come and
for each one:

1. creates the tick's job with an idempotency key made of the schedule and the tick (`tick:<instant>`, its
   caller the schedule), through `JobService.create_from` like any other create: the store inserts the key in
   the job's own transaction, so of two replicas (or a replica and itself after a restart) creating the same
   tick's job, one inserts it and the other finds the key taken and gets that job back;
2. advances the schedule past now, in a read-modify-write of its row that does nothing unless the row still
   says the tick it started from: the replica that comes second, or a sweep that raced a pause, changes nothing.

A crash between the two leaves the schedule on its tick; the next sweep, on any replica, creates nothing new
(the key is there) and advances it. So each tick makes one job, and no tick is lost.

A platform that was down past several ticks makes one job when it is back, for the first tick it missed, and
moves on to the first tick after now: missed ticks are not made up one by one. Pausing skips the ticks until
the schedule is resumed, which starts from the first tick after the resume.

The instants are cronsim's in the schedule's zone (listener/schedules.py says how daylight-saving changes go).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from listener import topics
from listener.errors import Conflict, Invalid, NotFound
from listener.models import EventContext, job_spec, new_id
from listener.platform.domains import Domains
from listener.platform.store.base import NewEvent
from listener.schedules import Schedule, ScheduleCreate, SchedulesApi, ScheduleUpdate, describe, next_tick, upcoming

if TYPE_CHECKING:
    from listener.platform.jobs import JobService

__all__ = ["ScheduleRunner", "ScheduleService", "tick_key"]

log = logging.getLogger("listener.schedules")

UPCOMING = 5
"""How many next run times a schedule shows."""

# What JobService.create_from says when a key comes back with another body: here, a tick's job made already from
# the schedule as it was before an update of its input.
_REUSED = [{"field": "Idempotency-Key", "message": "reused"}]


def tick_key(tick: datetime) -> str:
    """The idempotency key of a tick's job (its caller is the schedule, `schedule:<id>`)."""
    return f"tick:{_iso(tick)}"


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ScheduleService(SchedulesApi):
    """`api.schedules` in-process (the signatures are SchedulesApi's), and the ticks' jobs (`fire_due`)."""

    def __init__(self, domains: Domains, jobs_as: Callable[[str], JobService]) -> None:
        self._d = domains
        self._jobs_as = jobs_as

    def _event(self, topic: str, schedule: Schedule) -> NewEvent:
        return self._d.event(topic, EventContext(), schedule.model_dump(mode="json", exclude={"upcoming"}))

    @staticmethod
    def _shown(schedule: Schedule) -> Schedule:
        if schedule.next_run_at is None:
            return schedule
        return schedule.model_copy(update={"upcoming": upcoming(schedule.cron, schedule.timezone,
                                                                schedule.next_run_at, UPCOMING)})

    async def _check(self, job: str, source: str | None, input: dict[str, Any]) -> None:
        """Refuse, naming the field, what would make every tick's job fail to be created."""
        domain, _, operation = job.partition(":")
        job_spec(type=domain, operation=operation, source=source, input=input)
        if source is not None:
            await self._d.context_of(source)  # Invalid naming `source` for an object that is not there

    # -- the Api ------------------------------------------------------------------

    async def _create(self, spec: ScheduleCreate) -> Schedule:
        await self._check(spec.job, spec.source, spec.input)
        now = self._d.clock.now()
        schedule = Schedule(
            id=new_id("sc"), job=spec.job, cron=spec.cron, timezone=spec.timezone, description=describe(spec.cron),
            input=spec.input, source=spec.source, paused=spec.paused,
            next_run_at=None if spec.paused else next_tick(spec.cron, spec.timezone, now),
            created_by=self._d.actor, created_at=now, updated_at=now)
        await self._d.store.insert_schedule(schedule, [self._event(topics.SCHEDULE_CREATED, schedule)])
        return self._shown(schedule)

    async def _list(self) -> list[Schedule]:
        return [self._shown(s) for s in await self._d.store.list_schedules()]

    async def _get(self, schedule_id: str) -> Schedule:
        return self._shown(await self._d.store.get_schedule(schedule_id))

    async def _update(self, schedule_id: str, changes: ScheduleUpdate) -> Schedule:
        given = {name: getattr(changes, name) for name in changes.model_fields_set}
        current = await self._d.store.get_schedule(schedule_id)
        await self._check(given.get("job", current.job), given.get("source", current.source),
                          given.get("input", current.input))
        now = self._d.clock.now()

        def rule(schedule: Schedule) -> tuple[Schedule | None, list[NewEvent]]:
            update: dict[str, Any] = {**given, "updated_at": now}
            cron, timezone = given.get("cron", schedule.cron), given.get("timezone", schedule.timezone)
            if "cron" in given:
                update["description"] = describe(cron)
            if not schedule.paused and ("cron" in given or "timezone" in given):
                update["next_run_at"] = next_tick(cron, timezone, now)
            new = schedule.model_copy(update=update)
            return new, [self._event(topics.SCHEDULE_UPDATED, new)]

        return await self._change(schedule_id, rule)

    async def _pause(self, schedule_id: str) -> Schedule:
        now = self._d.clock.now()

        def rule(schedule: Schedule) -> tuple[Schedule | None, list[NewEvent]]:
            if schedule.paused:
                return schedule, []  # pausing twice is pausing once
            new = schedule.model_copy(update={"paused": True, "next_run_at": None, "updated_at": now})
            return new, [self._event(topics.SCHEDULE_UPDATED, new)]

        return await self._change(schedule_id, rule)

    async def _resume(self, schedule_id: str) -> Schedule:
        now = self._d.clock.now()

        def rule(schedule: Schedule) -> tuple[Schedule | None, list[NewEvent]]:
            if not schedule.paused:
                return schedule, []
            new = schedule.model_copy(update={"paused": False, "updated_at": now,
                                              "next_run_at": next_tick(schedule.cron, schedule.timezone, now)})
            return new, [self._event(topics.SCHEDULE_UPDATED, new)]

        return await self._change(schedule_id, rule)

    async def _delete(self, schedule_id: str) -> None:
        def rule(schedule: Schedule) -> tuple[Schedule | None, list[NewEvent]]:
            return None, [self._event(topics.SCHEDULE_DELETED, schedule)]

        await self._d.store.change_schedule(schedule_id, rule)

    async def _change(self, schedule_id: str, rule: Callable[[Schedule], tuple[Schedule | None, list[NewEvent]]]
                      ) -> Schedule:
        schedule, _ = await self._d.store.change_schedule(schedule_id, rule)
        assert schedule is not None
        return self._shown(schedule)

    # -- the ticks ----------------------------------------------------------------

    async def fire_due(self, *, limit: int = 100) -> int:
        """Make the job of every schedule whose tick has come and move each to its next tick.

        Returns how many schedules this call moved on (a tick another replica took first is not counted).
        """
        now = self._d.clock.now()
        fired = 0
        for schedule_id in await self._d.store.due_schedules(now, limit):
            try:
                if await self._fire(schedule_id, now):
                    fired += 1
            except NotFound:
                pass  # deleted meanwhile
        return fired

    async def _fire(self, schedule_id: str, now: datetime) -> bool:
        schedule = await self._d.store.get_schedule(schedule_id)
        tick = schedule.next_run_at
        if schedule.paused or tick is None or tick > now:
            return False  # paused, or taken by another replica, since the due schedules were read
        job_id: str | None = None
        error: str | None = None
        try:
            job_id = await self._make(schedule, tick)
        except (Invalid, NotFound, Conflict) as exc:
            # What the schedule names is gone (its source deleted, say): the tick passes, saying why, and the
            # next tick tries again.
            error = exc.message
            log.warning("Schedule %s made no %s job for %s: %s", schedule.id, schedule.job, _iso(tick), error)

        def advance(current: Schedule) -> tuple[Schedule | None, list[NewEvent]]:
            if current.next_run_at != tick:
                return current, []  # another replica advanced it, or it was paused or changed meanwhile
            try:
                # From now, not from the tick: after a downtime the ticks missed are not made one by one.
                following: datetime | None = next_tick(current.cron, current.timezone, max(now, tick))
            except ValueError:
                following = None  # no tick in the next 50 years
            new = current.model_copy(update={
                "next_run_at": following, "last_run_at": tick, "last_error": error, "updated_at": now,
                "last_job_id": job_id or current.last_job_id})
            return new, [self._event(topics.SCHEDULE_UPDATED, new)]

        _, events = await self._d.store.change_schedule(schedule_id, advance)
        return bool(events)

    async def _make(self, schedule: Schedule, tick: datetime) -> str | None:
        """Create the tick's job (or find the one made already); its id, None if made already by an older version
        of the schedule."""
        domain, _, operation = schedule.job.partition(":")
        spec = job_spec(type=domain, operation=operation, source=schedule.source, input=schedule.input,
                        mode="background", metadata={"scheduleId": schedule.id, "scheduledFor": _iso(tick)})
        jobs = self._jobs_as(f"schedule:{schedule.id}")
        try:
            job = await jobs.create_from(spec, idempotency_key=tick_key(tick))
        except Invalid as exc:
            if exc.details == _REUSED:
                return None
            raise
        return job.id


class ScheduleRunner:
    """Makes the jobs of due schedules every `interval` seconds (and whenever `sweep()` is called)."""

    def __init__(self, schedules: ScheduleService, *, interval: float = 0.5, batch: int = 100) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}.")
        self.schedules = schedules
        self.interval = interval
        self.batch = batch
        self.fired = 0

    async def sweep(self) -> int:
        """Make every tick that has come now; returns how many schedules moved on."""
        fired = 0
        while True:
            n = await self.schedules.fire_due(limit=self.batch)
            fired += n
            if n < self.batch:
                break
        self.fired += fired
        return fired

    async def run(self) -> None:
        """Sweep until cancelled; a failed sweep is logged and tried again at the next one."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("A schedules sweep failed; trying again in %.1fs", self.interval)
            await anyio.sleep(self.interval)
