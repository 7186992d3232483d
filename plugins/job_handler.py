"""job_handler: the whole job lifecycle around one function.

```python
async def export(event: Event, tick: Tick) -> Outcome:
    await tick(50, "Halfway there")
    return Outcome(message="Exported.")

listener.use(job_handler("workbook:export", export, timeout=60))
```

On job:ready for the job it acks (progress 0, info "Accepted"), runs the handler
with `tick(progress, info)`, then completes the job with the returned Outcome
(or a default message when it returns None) or fails it with the exception's
message. A job another worker already claimed is left alone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
from pydantic import BaseModel

from listener.api import Api
from listener.errors import Conflict, Invalid, JobFailed, NotFound
from listener.listener import Listener
from listener.models import Event, Job, JobStatus, Outcome, RetryPolicy, parse
from listener.topics import JOB_READY
from listener.types import Plugin

__all__ = ["Tick", "job_handler"]

log = logging.getLogger("listener.job_handler")

DEFAULT_MESSAGE = "Job complete."
_CLAIM_BACKOFF_CAP = 5.0


class Tick(Protocol):
    """Report progress (0-100) and an info line; also moves the job's estimated completion time.

    `await tick.checkpoint(state)` saves a small JSON state; if this attempt fails, the next one finds
    it in `event.cache["checkpoint"]` and can resume after the last finished batch.

    `tick.items` is what this job is to do again when it retries another's failed items (its `retryOf`,
    `jobs.retry_failed_items`): exactly those items, from its input; None for any other job (do it all). So
    one handler serves both: `for row in rows if tick.items is None or row.key in tick.items`.
    """

    items: list[Any] | None

    def __call__(self, progress: int, info: str | None = None) -> Awaitable[Job]: ...
    def checkpoint(self, state: dict[str, Any]) -> Awaitable[Job]: ...
    def split(self, parts: int | Sequence[dict[str, Any]], *, run_in_parallel: bool = True,
              settle: str = "auto") -> Awaitable[Job]:
        """Split the job into parts; returning then leaves the job to its parts (settled by default when they end)."""
        ...


class _Ticker:
    def __init__(self, api: Api, job: Job) -> None:
        self.api, self.job_id, self.attempt = api, job.id, job.attempt
        items = job.input.get("items") if job.retry_of is not None else None
        self.items: list[Any] | None = items if isinstance(items, list) else None
        self.started = time.monotonic()
        self.was_split = False

    async def __call__(self, progress: int, info: str | None = None) -> Job:
        eta = None
        if 0 < progress < 100:
            elapsed = time.monotonic() - self.started
            eta = datetime.now(UTC) + timedelta(seconds=elapsed * (100 - progress) / progress)
        return await self.api.jobs.update(self.job_id, progress=progress, info=info, estimated_completion_at=eta,
                                          attempt=self.attempt)

    async def checkpoint(self, state: dict[str, Any]) -> Job:
        return await self.api.jobs.checkpoint(self.job_id, state, attempt=self.attempt)

    async def split(self, parts: int | Sequence[dict[str, Any]], *, run_in_parallel: bool = True,
                    settle: str = "auto") -> Job:
        job = await self.api.jobs.split(self.job_id, parts=parts, run_in_parallel=run_in_parallel, settle=settle,
                                        attempt=self.attempt)
        self.was_split = True
        return job


JobHandlerFn = Callable[[Event, Tick], Awaitable[Outcome | dict[str, Any] | None] | Outcome | dict[str, Any] | None]


def _outcome(result: Outcome | dict[str, Any] | None) -> Outcome:
    if result is None:
        return Outcome(message=DEFAULT_MESSAGE)
    if isinstance(result, Outcome):
        return result
    if isinstance(result, dict):
        # Flatfile's handlers return {"outcome": {...}}; a bare outcome dict is accepted too.
        return parse(Outcome, result.get("outcome", result), what="outcome")
    raise TypeError(f"A job handler returns an Outcome, a dict or None, not {type(result).__name__}.")


def _failed(message: str) -> Outcome:
    """What the person sees of a failure: its message, to acknowledge (as Flatfile's `jobs.fail` with an outcome)."""
    return Outcome(message=message, acknowledge=True)


async def _claim(api: Api, job_id: str, retry: RetryPolicy | None, lease: int) -> Job | None:
    """Ack the job; None if it is not ours to run.

    While the server cannot be reached this keeps trying, with backoff: once the handler returns, the
    runner moves its cursor past this job:ready, and nothing would announce the job to us again.
    (An ack the server applied before the connection dropped comes back as Conflict: the job's lease
    then runs out and it is retried.)
    """
    delay = 0.1
    while True:
        try:
            return await api.jobs.ack(job_id, info="Accepted", progress=0, retry=retry, lease_seconds=lease)
        except (Conflict, NotFound):
            return None
        except ConnectionError as exc:
            log.warning("Cannot claim job %s yet (%s); trying again in %.1fs", job_id, exc, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, _CLAIM_BACKOFF_CAP)


class _Watch:
    """Keeps the lease of a running job and stops its handler (`scope`) once the job is no longer its to run.

    Every `interval` it checks the job, or renews its lease when a third of it has passed; a job cancelled,
    timed out or given to another attempt sets `taken` and cancels the scope. A loop timer, not a task: most
    handlers return before the first check, and a task group, a task and an event per job were a tenth of
    the in-process cost of a no-op job. (Listener runs on asyncio or uvloop only: process.loop_options.)
    """

    def __init__(self, api: Api, job_id: str, attempt: int, lease_seconds: int, interval: float) -> None:
        self.api, self.job_id, self.attempt, self.lease_seconds, self.interval = (
            api, job_id, attempt, lease_seconds, interval)
        self.scope = anyio.CancelScope()
        self.taken = False
        self._renewed = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(interval, self._fire)
        self._check: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def _fire(self) -> None:
        self._timer = None
        self._check = self._loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            if time.monotonic() - self._renewed >= self.lease_seconds / 3:
                await self.api.jobs.heartbeat(self.job_id, attempt=self.attempt)
                self._renewed = time.monotonic()
            else:
                current = await self.api.jobs.get(self.job_id)
                if current.status is not JobStatus.EXECUTING or current.attempt != self.attempt:
                    raise Conflict(f"Job {self.job_id} is {current.status.value}.")
        except (Conflict, NotFound):
            self.taken = True
            self.scope.cancel()
            return
        except ConnectionError:
            pass  # the server is away: the lease says how long we may wait for it
        except Exception as exc:  # the handler stops, and the job fails with this error
            self._error = exc
            self.scope.cancel()
            return
        if self._check is not None:  # not stopped meanwhile
            self._timer = self._loop.call_later(self.interval, self._fire)

    async def stop(self) -> None:
        """Stop watching once the handler has returned; a check under way finishes first. Raises its error."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        check, self._check = self._check, None
        if check is not None and not check.done():
            with anyio.CancelScope(shield=True):
                await check  # it does not arm the timer again: _check is None
        if self._error is not None:
            raise self._error


def job_handler(
    job: str,
    handler: JobHandlerFn,
    *,
    timeout: float | None = None,
    input: type[BaseModel] | None = None,
    retry: RetryPolicy | None = None,
    lease_seconds: int = 60,
    watch_interval: float = 1.0,
    filter: Mapping[str, Any] | None = None,
) -> Plugin:
    """A plugin that runs `handler(event, tick)` for every ready job named `job` (`domain:operation`, globs allowed).

    Args:
        job: the jobs to handle, e.g. "workbook:export" or "workbook:*".
        handler: sync or async; returns an Outcome, a dict (`{"outcome": {...}}`) or None.
        timeout: seconds the handler may run; past it the handler is cancelled and the job fails with kind `timeout`.
        input: a pydantic model that `job.input` must validate as before the handler runs; the validated
            model is in `event.cache["input"]`. Invalid input fails the job with the validation message.
        retry: the retry policy for these jobs (unless a job was created with its own): an exception
            is retried with backoff while attempts are left; raise `NonRetryable` to fail at once. A
            failed job's outcome is the error's message, to acknowledge; raise `JobFailed(message,
            outcome=...)` to give your own (a `retry` button, say), `retryable=False` to fail at once.
        lease_seconds: how long the job stays ours without news; a heartbeat renews it while the handler runs,
            so a worker that dies loses the job after at most this long and it is retried.
        watch_interval: how often the running job is checked; cancelled or taken away, the handler is cancelled.
        filter: more of the event filter, e.g. `{"isPart": True}` to handle only the parts of split jobs.

    A handler that calls `await tick.split(parts)` hands the job to its parts: its return value is
    ignored and the platform settles the job when the parts have finished (`settle="listener"`
    leaves that to a job:parts-completed listener).

    In the handler, `event.cache["job"]` is the job as acknowledged.
    """
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}.")
    if lease_seconds < 1 or watch_interval <= 0:
        raise ValueError("lease_seconds must be at least 1 and watch_interval positive.")

    async def on_ready(event: Event) -> None:
        api = event.api
        job_id = event.context.job_id
        assert job_id is not None, "job:ready always names its job"
        acked = await _claim(api, job_id, retry, lease_seconds)
        if acked is None:
            return  # claimed by another worker, cancelled or deleted: not ours to run
        event.cache["job"] = acked
        attempt = acked.attempt
        event.cache["checkpoint"] = acked.checkpoint
        tick = _Ticker(api, acked)

        async def finish(**kw: Any) -> None:
            # The write that ends the attempt must happen even if we are being cancelled.
            with anyio.CancelScope(shield=True):
                try:
                    if "outcome" in kw and "error" not in kw:
                        await api.jobs.complete(job_id, attempt=attempt, **kw)
                    else:
                        await api.jobs.fail(job_id, attempt=attempt, **kw)
                except (Conflict, NotFound) as exc:
                    log.info("Job %s could not be finished: %s", job_id, exc)

        if input is not None:
            try:
                event.cache["input"] = parse(input, acked.input, what="input")
            except Invalid as exc:
                await finish(error=exc.message, kind="invalid_input", outcome=_failed(exc.message))
                return
        watch = _Watch(api, job_id, attempt, lease_seconds, watch_interval)
        try:
            # The handler's own error comes out as itself (no task group wraps it).
            result: Outcome | dict[str, Any] | None = None  # stays None only if the watch stopped the handler
            try:
                with watch.scope, anyio.fail_after(timeout) if timeout is not None else nullcontext():
                    returned = handler(event, tick)
                    result = await returned if inspect.isawaitable(returned) else returned
            finally:
                await watch.stop()
            if watch.taken:
                log.info("Job %s was cancelled or taken away; its handler was stopped.", job_id)
                return
            if tick.was_split:
                return  # the parts do the work now; the parent is settled when they have finished
            outcome = _outcome(result)
        except TimeoutError:
            message = f"Timed out after {timeout:g}s."
            await finish(error=message, kind="timeout", outcome=_failed(message))
        except JobFailed as exc:
            if watch.taken:
                return
            try:
                outcome = _failed(exc.message) if exc.outcome is None else _outcome(exc.outcome)
            except (Invalid, TypeError) as bad:
                log.error("Job %s: the outcome of the JobFailed raised is not valid (%s); failing with the message.",
                          job_id, bad)
                outcome = _failed(exc.message)
            await finish(error=exc.message, retryable=exc.retryable, outcome=outcome)
        except Exception as exc:
            if watch.taken:
                return
            log.exception("Job %s (%s) failed on attempt %d", job_id, event.context.job, attempt)
            message = str(exc) or type(exc).__name__
            await finish(error=message, retryable=True, outcome=_failed(message))
        else:
            await finish(outcome=outcome)

    on_ready.__qualname__ = f"job_handler({job!r}, {getattr(handler, '__qualname__', handler)})"

    def plugin(listener: Listener) -> None:
        listener.on(JOB_READY, {**(filter or {}), "job": job}, on_ready)

    return plugin
