"""Schedules on both stores, time moved by hand: each tick makes one job, DST in Europe/Berlin both ways, a
downtime makes one job, pause / resume / update / delete, exactly once across a restart (and a crash between a
tick's job and its advance) and across two replicas on one PostgreSQL schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from listener import Invalid, JobStatus, NotFound, Platform
from listener.models import Job
from listener.platform.schedules import tick_key
from listener.schedules import Schedule, next_tick, upcoming
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


async def scheduled_jobs(platform: Platform, schedule: Schedule | None = None) -> list[Job]:
    """The jobs schedules made (of one schedule), oldest first."""
    jobs = (await platform.api.jobs.list(limit=500)).items
    return sorted([j for j in jobs if (j.created_by or "").startswith(f"schedule:{schedule.id if schedule else ''}")],
                  key=lambda j: j.created_at)


async def at(platform: Platform, clock: ManualClock, when: datetime) -> int:
    """Move the clock to `when` and sweep the schedules."""
    clock.current = when
    return await platform.schedule_runner.sweep()


async def test_each_tick_makes_one_job_with_the_schedules_input_and_source(platform: Platform,
                                                                            clock: ManualClock) -> None:
    wb = await platform.api.workbooks.create(name="Reports")
    clock.current = utc(2026, 1, 1, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="0 3 * * *", timezone=BERLIN,
                                                   input={"format": "csv"}, source=wb.id)
    assert (schedule.id[:3], schedule.job, schedule.cron, schedule.timezone, schedule.paused) == (
        "sc_", "workbook:export", "0 3 * * *", BERLIN, False)
    assert schedule.description == "At 03:00 every day"
    assert schedule.next_run_at == utc(2026, 1, 2, 2, 0)  # 03:00 in Berlin's winter time (UTC+1)
    assert schedule.upcoming == [utc(2026, 1, d, 2, 0) for d in range(2, 7)]
    assert await at(platform, clock, utc(2026, 1, 2, 1, 59, 59)) == 0, "not before its tick"
    assert await at(platform, clock, utc(2026, 1, 2, 2, 0)) == 1
    assert await at(platform, clock, utc(2026, 1, 2, 2, 0, 30)) == 0, "a tick makes one job, however many sweeps"
    [job] = await scheduled_jobs(platform, schedule)
    assert (job.job, job.input, job.source, job.status, job.created_by, job.mode.value) == (
        "workbook:export", {"format": "csv"}, wb.id, JobStatus.READY, f"schedule:{schedule.id}", "background")
    assert job.metadata == {"scheduleId": schedule.id, "scheduledFor": "2026-01-02T02:00:00Z"}
    schedule = await platform.api.schedules.get(schedule.id)
    assert (schedule.last_run_at, schedule.last_job_id, schedule.next_run_at, schedule.last_error) == (
        utc(2026, 1, 2, 2, 0), job.id, utc(2026, 1, 3, 2, 0), None)
    await at(platform, clock, utc(2026, 1, 3, 2, 0))
    assert len(await scheduled_jobs(platform, schedule)) == 2
    topics = [e.topic for e in await platform.api.events.list() if e.topic.startswith("schedule:")]
    assert topics == ["schedule:created", "schedule:updated", "schedule:updated"]


async def test_spring_forward_a_0230_schedule_runs_once_at_0300(platform: Platform, clock: ManualClock) -> None:
    # 2026-03-29: Berlin's clocks go from 02:00 to 03:00; 02:30 does not exist that day.
    clock.current = utc(2026, 3, 27, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="30 2 * * *", timezone=BERLIN)
    assert schedule.upcoming[:3] == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST: the first minute after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]
    for minute in range(0, 48 * 60, 15):  # two days, a sweep every 15 minutes
        await at(platform, clock, utc(2026, 3, 28, 0, 0) + timedelta(minutes=minute))
    jobs = await scheduled_jobs(platform, schedule)
    assert [j.metadata["scheduledFor"] for j in jobs] == ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"]


async def test_fall_back_a_0230_schedule_runs_once_at_the_first_0230(platform: Platform, clock: ManualClock) -> None:
    # 2026-10-25: Berlin's clocks go from 03:00 back to 02:00; 02:30 happens twice (00:30 and 01:30 UTC).
    clock.current = utc(2026, 10, 24, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="30 2 * * *", timezone=BERLIN)
    assert schedule.upcoming[:3] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]
    for minute in range(0, 36 * 60, 15):
        await at(platform, clock, utc(2026, 10, 24, 22, 0) + timedelta(minutes=minute))
    jobs = await scheduled_jobs(platform, schedule)
    assert [j.metadata["scheduledFor"] for j in jobs] == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]


def test_a_schedule_naming_no_hour_follows_elapsed_time_through_dst() -> None:
    # Every 30 minutes: both passes of the repeated hour in autumn, and nothing in the hour skipped in spring.
    autumn = upcoming("*/30 * * * *", BERLIN, next_tick("*/30 * * * *", BERLIN, utc(2026, 10, 24, 23, 45)), 6)
    assert autumn == [utc(2026, 10, 25, 0, 0) + timedelta(minutes=30 * i) for i in range(6)]
    spring = upcoming("*/30 * * * *", BERLIN, next_tick("*/30 * * * *", BERLIN, utc(2026, 3, 28, 23, 45)), 6)
    assert spring == [utc(2026, 3, 29, 0, 0) + timedelta(minutes=30 * i) for i in range(6)]
    # From the second pass of the repeated hour, the next 02:45 is tomorrow's: today's came an hour ago.
    assert next_tick("45 2 * * *", BERLIN, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 26, 1, 45)


async def test_a_downtime_over_several_ticks_makes_one_job_then_goes_on(platform: Platform,
                                                                         clock: ManualClock) -> None:
    clock.current = utc(2026, 1, 1, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="@hourly")
    assert schedule.next_run_at == utc(2026, 1, 1, 13, 0)
    assert await at(platform, clock, utc(2026, 1, 1, 18, 20)) == 1, "five ticks missed, one job"
    [job] = await scheduled_jobs(platform, schedule)
    assert job.metadata["scheduledFor"] == "2026-01-01T13:00:00Z", "made for the first tick it missed"
    schedule = await platform.api.schedules.get(schedule.id)
    assert (schedule.last_run_at, schedule.next_run_at) == (utc(2026, 1, 1, 13, 0), utc(2026, 1, 1, 19, 0))
    assert await at(platform, clock, utc(2026, 1, 1, 19, 0)) == 1
    assert len(await scheduled_jobs(platform, schedule)) == 2


async def test_pause_resume_update_and_delete(platform: Platform, clock: ManualClock) -> None:
    clock.current = utc(2026, 1, 1, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="0 * * * *")
    paused = await platform.api.schedules.pause(schedule.id)
    assert (paused.paused, paused.next_run_at, paused.upcoming) == (True, None, [])
    assert await platform.api.schedules.pause(schedule.id) == paused, "pausing twice is pausing once"
    await at(platform, clock, utc(2026, 1, 1, 15, 30))
    assert await scheduled_jobs(platform, schedule) == [], "a paused schedule makes nothing"
    resumed = await platform.api.schedules.resume(schedule.id)
    assert (resumed.paused, resumed.next_run_at) == (False, utc(2026, 1, 1, 16, 0)), "the ticks paused are skipped"
    await at(platform, clock, utc(2026, 1, 1, 16, 0))
    assert len(await scheduled_jobs(platform, schedule)) == 1
    updated = await platform.api.schedules.update(schedule.id, cron="30 9 * * 1-5", timezone=BERLIN,
                                                  input={"n": 1})
    assert (updated.cron, updated.timezone, updated.input, updated.next_run_at) == (
        "30 9 * * 1-5", BERLIN, {"n": 1}, utc(2026, 1, 2, 8, 30))  # Friday 09:30 CET
    assert updated.description.startswith("At 09:30")
    await at(platform, clock, utc(2026, 1, 2, 8, 30))
    assert (await scheduled_jobs(platform, schedule))[-1].input == {"n": 1}
    assert [s.id for s in await platform.api.schedules.list()] == [schedule.id]
    await platform.api.schedules.delete(schedule.id)
    assert await platform.api.schedules.list() == []
    for call in (platform.api.schedules.get, platform.api.schedules.pause, platform.api.schedules.delete):
        with pytest.raises(NotFound, match=schedule.id):
            await call(schedule.id)
    await at(platform, clock, utc(2026, 1, 5, 8, 30))
    assert len(await scheduled_jobs(platform, schedule)) == 2, "a deleted schedule makes nothing; its jobs stay"
    events = [e for e in await platform.api.events.list(limit=1000) if e.topic.startswith("schedule:")]
    assert events[-1].topic == "schedule:deleted" and events[-1].payload["id"] == schedule.id


@pytest.mark.parametrize(("fields", "field"), [
    ({"job": "export"}, "job"),
    ({"job": "Workbook:export"}, "job"),
    ({"job": "workbook:"}, "job"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 3 * *"}, "cron"),
    ({"cron": "0 3 * * * *"}, "cron"),
    ({"cron": "0 0 31 2 *"}, "cron"),
    ({"cron": ""}, "cron"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../etc/passwd"}, "timezone"),
    ({"source": "wb_nothere"}, "source"),
])
async def test_bad_input_is_invalid_naming_the_field_and_writes_nothing(platform: Platform, fields: dict[str, Any],
                                                                        field: str) -> None:
    head = await platform.store.head()
    with pytest.raises(Invalid) as raised:
        await platform.api.schedules.create(**{"job": "workbook:export", "cron": "0 3 * * *", **fields})
    assert [d["field"] for d in raised.value.details] == [field]
    assert await platform.api.schedules.list() == [] and await platform.store.head() == head


async def test_a_tick_whose_source_is_gone_says_why_and_the_schedule_goes_on(platform: Platform,
                                                                             clock: ManualClock) -> None:
    wb = await platform.api.workbooks.create(name="Gone soon")
    clock.current = utc(2026, 1, 1, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="@hourly", source=wb.id)
    await platform.api.workbooks.delete(wb.id)
    await at(platform, clock, utc(2026, 1, 1, 13, 0))
    schedule = await platform.api.schedules.get(schedule.id)
    assert schedule.last_error is not None and wb.id in schedule.last_error
    assert (schedule.last_job_id, schedule.next_run_at) == (None, utc(2026, 1, 1, 14, 0))
    with pytest.raises(Invalid, match="source"):
        await platform.api.schedules.update(schedule.id, job="workbook:import")
    await platform.api.schedules.update(schedule.id, source=None)
    await at(platform, clock, utc(2026, 1, 1, 14, 0))
    schedule = await platform.api.schedules.get(schedule.id)
    assert schedule.last_error is None and schedule.last_job_id is not None


async def test_exactly_once_across_a_restart_and_a_crash_between_the_job_and_the_advance(
        db_url: str, clock: ManualClock) -> None:
    clock.current = utc(2026, 1, 1, 12, 0)
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        schedule = await platform.api.schedules.create(job="workbook:export", cron="@hourly")
        await at(platform, clock, utc(2026, 1, 1, 13, 0))
        store: Any = platform.store

        async def crash(*args: Any) -> Any:
            raise OSError("the process died here")

        store.change_schedule = crash  # the tick's job is made, then the process dies before the advance
        with pytest.raises(OSError):
            await at(platform, clock, utc(2026, 1, 1, 14, 0))
        assert len(await scheduled_jobs(platform, schedule)) == 2
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        assert (await platform.api.schedules.get(schedule.id)).next_run_at == utc(2026, 1, 1, 14, 0), "not advanced"
        assert await at(platform, clock, utc(2026, 1, 1, 14, 5)) == 1, "the restart takes the tick on"
        assert await at(platform, clock, utc(2026, 1, 1, 14, 10)) == 0
        jobs = await scheduled_jobs(platform, schedule)
        assert [j.metadata["scheduledFor"] for j in jobs] == ["2026-01-01T13:00:00Z", "2026-01-01T14:00:00Z"]
        assert (await platform.api.schedules.get(schedule.id)).last_job_id == jobs[1].id
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:  # and once more, later
        assert await at(platform, clock, utc(2026, 1, 1, 15, 0)) == 1
        assert len(await scheduled_jobs(platform, schedule)) == 3


async def test_a_tick_made_from_an_older_version_of_the_schedule_is_not_made_again(platform: Platform,
                                                                                 clock: ManualClock) -> None:
    clock.current = utc(2026, 1, 1, 12, 0)
    schedule = await platform.api.schedules.create(job="workbook:export", cron="@hourly", input={"v": 1})
    # A replica made 13:00's job from version 1, then the input changed before the schedule moved on.
    tick = utc(2026, 1, 1, 13, 0)
    made = await platform.api.as_actor(f"schedule:{schedule.id}").jobs.create_from(_spec(schedule, tick),
                                                                                 idempotency_key=tick_key(tick))
    await platform.api.schedules.update(schedule.id, input={"v": 2})
    assert await at(platform, clock, utc(2026, 1, 1, 13, 0)) == 1
    assert [j.id for j in await scheduled_jobs(platform, schedule)] == [made.id]


def _spec(schedule: Schedule, tick: datetime) -> Any:
    from listener.models import job_spec

    return job_spec(type="workbook", operation="export", input=schedule.input, mode="background",
                    metadata={"scheduleId": schedule.id, "scheduledFor": tick.isoformat().replace("+00:00", "Z")})


async def test_two_replicas_on_one_postgresql_schema_make_one_job_per_tick(pg_url: str) -> None:
    clock = ManualClock(utc(2026, 1, 1, 12, 0))
    async with Platform.open(pg_url, clock=clock, sweep_interval=None) as a, \
            Platform.open(pg_url, clock=clock, sweep_interval=None) as b:
        schedules = [await a.api.schedules.create(job="workbook:export", cron="*/5 * * * *") for _ in range(5)]
        for minute in range(5, 65, 5):
            clock.current = utc(2026, 1, 1, 12, 0) + timedelta(minutes=minute)
            fired: list[int] = []

            async def sweep(platform: Platform) -> None:
                fired.append(await platform.schedule_runner.sweep())  # noqa: B023  # awaited in this iteration

            async with anyio.create_task_group() as tg:  # both at once, as two replicas' sweeps come
                for _ in range(3):
                    tg.start_soon(sweep, a)
                    tg.start_soon(sweep, b)
            assert sum(fired) == len(schedules), "each schedule moved on once per tick"
        for schedule in schedules:
            jobs = await scheduled_jobs(a, schedule)
            assert len(jobs) == 12, "one job per tick, not one per replica or per sweep"
            assert len({j.metadata["scheduledFor"] for j in jobs}) == 12


async def test_the_platform_sweeps_schedules_by_itself(tmp_path: Path) -> None:
    """With sweeps on (the default), a tick that has come is made without anyone calling sweep()."""
    clock = ManualClock(utc(2026, 1, 1, 12, 0))
    async with Platform.open(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock, sweep_interval=0.01) as platform:
        schedule = await platform.api.schedules.create(job="workbook:export", cron="@hourly")
        made = anyio.Event()

        def on_batch(events: Any) -> None:
            if any(e.topic == "job:created" for e in events):
                made.set()

        platform.eventlog.on_batch(on_batch)
        clock.current = utc(2026, 1, 1, 13, 0)
        with anyio.fail_after(10):
            await made.wait()
        platform.eventlog.off_batch(on_batch)
        assert len(await scheduled_jobs(platform, schedule)) == 1
