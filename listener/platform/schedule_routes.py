"""The REST routes of schedules under /api/v1/schedules, in the one route table (routes.py's `route`).

Admins manage schedules; everyone signed in (members and agents too) may list and read them, as they may
read the job types' settings: a schedule says when jobs will come, not what is in them beyond its input.
"""

from __future__ import annotations

from listener.platform.auth import Role
from listener.platform.routes import Call, Items, Reply, route
from listener.schedules import Schedule, ScheduleCreate, ScheduleUpdate

__all__ = ["ADMINS"]

ADMINS = frozenset({Role.ADMIN})


@route("POST", "/schedules", tag="schedules", body=ScheduleCreate, response=Schedule, status=201, roles=ADMINS)
async def create_schedule(call: Call) -> Reply:
    """Create a schedule: a job `domain:operation` at each tick of a cron expression in a time zone."""
    body: ScheduleCreate = call.body
    schedule = await call.api.schedules.create(job=body.job, cron=body.cron, timezone=body.timezone,
                                               input=body.input, source=body.source, paused=body.paused)
    return Reply(schedule, status=201, headers={"Location": f"/api/v1/schedules/{schedule.id}"})


@route("GET", "/schedules", tag="schedules", response=Items[Schedule])
async def list_schedules(call: Call) -> Items[Schedule]:
    """Every schedule, oldest first, with its next run times."""
    return Items[Schedule](items=await call.api.schedules.list())


@route("GET", "/schedules/{scheduleId}", tag="schedules", response=Schedule)
async def get_schedule(call: Call) -> Schedule:
    """One schedule: what it makes, when it runs next, and its last run."""
    return await call.api.schedules.get(call.param("scheduleId"))


@route("PATCH", "/schedules/{scheduleId}", tag="schedules", body=ScheduleUpdate, response=Schedule, roles=ADMINS)
async def update_schedule(call: Call) -> Schedule:
    """Change a schedule's job, cron expression, time zone, input or source; only the fields given change."""
    body: ScheduleUpdate = call.body
    given = {name: getattr(body, name) for name in body.model_fields_set}
    return await call.api.schedules.update(call.param("scheduleId"), **given)


@route("POST", "/schedules/{scheduleId}/pause", tag="schedules", response=Schedule, roles=ADMINS)
async def pause_schedule(call: Call) -> Schedule:
    """Stop making jobs until resumed; the ticks in between are skipped."""
    return await call.api.schedules.pause(call.param("scheduleId"))


@route("POST", "/schedules/{scheduleId}/resume", tag="schedules", response=Schedule, roles=ADMINS)
async def resume_schedule(call: Call) -> Schedule:
    """Make jobs again, from the first tick after now."""
    return await call.api.schedules.resume(call.param("scheduleId"))


@route("DELETE", "/schedules/{scheduleId}", tag="schedules", status=204, roles=ADMINS)
async def delete_schedule(call: Call) -> None:
    """Delete a schedule; the jobs it made are kept."""
    await call.api.schedules.delete(call.param("scheduleId"))
