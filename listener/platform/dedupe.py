"""Dedupe and debounce: `jobs.create(dedupe_key=, debounce_seconds=)` finds the job still waiting with the key.

The part of JobService (jobs.py) behind a create with a `dedupe_key`; it holds no state of its own.

A job *waits* with its key from its insert until it is first acked (created, planning, scheduled or ready
with no attempt yet: store.base.dedupe_slot). While one waits, a create of the same type:operation with
the same key, in the same scope, adds no job:

- without `debounce_seconds` it returns the waiting job as it is (`job.dedupe == "deduplicated"`), and
  nothing is written or emitted;
- with `debounce_seconds` it replaces the waiting job's input with its own and pushes its start back to
  `debounce_seconds` after this create (`"debounced"`): runAt and nextAttemptAt move, a ready job goes back
  to scheduled, and job:updated says so. The scheduler makes it ready when that time comes.

Once the job has started, a create with the key makes a new job (`"created"`). A job's key is scoped by its
type:operation and by `dedupe_scope`: a member's creates (over REST or the worker channel) use the member's
name, so one member's key never finds, changes or reveals another's job; everyone else shares one scope.

Race-safety is the store's: the look-up of the key is part of the insert's transaction (store.base
`insert_job`), and a debounce's change re-checks, under the job's row lock, that the job still waits; if it
started meanwhile the create is tried again, and then inserts a new job.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from listener import topics
from listener.errors import Conflict, NotFound
from listener.models import EventContext, Job, JobCreate, JobStatus
from listener.platform.moves import Events, job_payload
from listener.platform.store.base import DedupeHit, Idempotency, JobChange, JobRule, NewEvent, dedupe_slot
from listener.types import Clock

__all__ = ["DedupeMixin"]

# How often a create goes round when the job it found started (or was deleted) before it could be debounced:
# each round either returns or sees a job that another create just inserted, so a few rounds are plenty.
_ROUNDS = 5


class _Started(Exception):
    """The job found waiting with the key no longer waits: the create goes round again."""


class DedupeMixin:
    """jobs.create with a dedupe_key."""

    _clock: Clock
    actor: str | None

    if TYPE_CHECKING:
        def _bind(self, job: Job) -> Job: ...
        async def _change(self, job_id: str, rule: JobRule) -> tuple[Job | None, Events]: ...
        async def _follow(self, events: Events) -> None: ...
        async def _create(self, spec: JobCreate, idempotency: Idempotency | None, *, retry_of: str | None = None,
                          dedupe_scope: str | None = None) -> Job: ...

    async def _create_deduped(self, spec: JobCreate, idempotency: Idempotency | None, scope: str | None) -> Job:
        """Create the job unless one waits with its key (then dedupe or debounce it); `job.dedupe` says which."""
        assert spec.dedupe_key is not None
        for _ in range(_ROUNDS):
            now = self._clock.now()
            start = None if spec.debounce_seconds is None else now + timedelta(seconds=spec.debounce_seconds)
            first = spec
            if start is not None and (spec.run_at is None or spec.run_at < start):
                first = spec.model_copy(update={"run_at": start})  # a debounced job waits out its window first
            try:
                return (await self._create(first, idempotency, dedupe_scope=scope)).noted("created")
            except DedupeHit as hit:
                if start is None:
                    return self._bind(hit.job).noted("deduplicated")
                try:
                    job, events = await self._change(hit.job.id, self._debounce(spec, scope, now, start))
                except (_Started, NotFound):
                    continue
                await self._follow(events)
                assert job is not None
                return self._bind(job).noted("debounced")
        raise Conflict(f"Could not create a {spec.type}:{spec.operation} job with dedupeKey {spec.dedupe_key!r}: its "
                       "waiting job kept starting before it could be debounced. Try again.",
                       details={"field": "dedupeKey", "move": "create"})

    def _debounce(self, spec: JobCreate, scope: str | None, now: datetime, start: datetime) -> JobRule:
        """The rule that gives a waiting job the create's input and pushes its start back to `start`."""
        slot = (scope or "", spec.dedupe_key)
        actor = self.actor

        def rule(job: Job, ctx: EventContext) -> JobChange:
            if dedupe_slot(job) != slot:
                raise _Started(job.id)
            run_at = max(start, spec.run_at) if spec.run_at is not None else start
            changes: dict[str, Any] = {"input": spec.input, "run_at": run_at, "updated_at": now,
                                       "debounce_seconds": spec.debounce_seconds}
            if job.status in (JobStatus.SCHEDULED, JobStatus.READY):
                # Back to waiting out its window, even if its time had come (ready, not acked yet) or it was
                # waiting for its type's limit (the scheduler admits it again when the window ends).
                changes.update(status=JobStatus.SCHEDULED, next_attempt_at=run_at, waiting_for=None)
                if job.waiting_for is not None:
                    changes["info"] = None
            new = job.model_copy(update=changes)
            context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
            payload = {**job_payload(new), "input": new.input, "runAt": run_at.isoformat(), "debounced": True}
            return JobChange(new, [NewEvent(topics.JOB_UPDATED, context, payload, now)])

        return rule
