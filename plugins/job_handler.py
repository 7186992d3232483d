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

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
from pydantic import BaseModel

from listener.api import Api
from listener.errors import Conflict, Invalid, NotFound
from listener.listener import Listener
from listener.models import Event, Job, Outcome, parse
from listener.topics import JOB_READY
from listener.types import Plugin

__all__ = ["Tick", "job_handler"]

log = logging.getLogger("listener.job_handler")

DEFAULT_MESSAGE = "Job complete."


class Tick(Protocol):
    """Report progress (0-100) and an info line; also moves the job's estimated completion time."""

    def __call__(self, progress: int, info: str | None = None) -> Awaitable[Job]: ...


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


async def _claim(api: Api, job_id: str, attempts: int = 3) -> Job | None:
    """Ack the job; None if it is not ours to run. A lost connection is tried again (on another replica)."""
    for attempt in range(attempts):
        try:
            return await api.jobs.ack(job_id, info="Accepted", progress=0)
        except (Conflict, NotFound):
            return None
        except ConnectionError:
            if attempt == attempts - 1:
                raise
            await anyio.sleep(0.1 * 2**attempt)
    return None  # pragma: no cover


def job_handler(
    job: str,
    handler: JobHandlerFn,
    *,
    timeout: float | None = None,
    input: type[BaseModel] | None = None,
) -> Plugin:
    """A plugin that runs `handler(event, tick)` for every ready job named `job` (`domain:operation`, globs allowed).

    Args:
        job: the jobs to handle, e.g. "workbook:export" or "workbook:*".
        handler: sync or async; returns an Outcome, a dict (`{"outcome": {...}}`) or None.
        timeout: seconds the handler may run; past it the handler is cancelled and the job fails with kind `timeout`.
        input: a pydantic model that `job.input` must validate as before the handler runs; the validated
            model is in `event.cache["input"]`. Invalid input fails the job with the validation message.

    In the handler, `event.cache["job"]` is the job as acknowledged.
    """
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}.")

    async def on_ready(event: Event) -> None:
        api = event.api
        job_id = event.context.job_id
        assert job_id is not None, "job:ready always names its job"
        acked = await _claim(api, job_id)
        if acked is None:
            return  # claimed by another worker, cancelled or deleted: not ours to run
        event.cache["job"] = acked
        started = time.monotonic()

        async def tick(progress: int, info: str | None = None) -> Job:
            eta = None
            if 0 < progress < 100:
                elapsed = time.monotonic() - started
                eta = datetime.now(UTC) + timedelta(seconds=elapsed * (100 - progress) / progress)
            return await api.jobs.update(job_id, progress=progress, info=info, estimated_completion_at=eta)

        async def finish(**kw: Any) -> None:
            # The write that ends the attempt must happen even if we are being cancelled.
            with anyio.CancelScope(shield=True):
                try:
                    if "outcome" in kw and "error" not in kw:
                        await api.jobs.complete(job_id, **kw)
                    else:
                        await api.jobs.fail(job_id, **kw)
                except (Conflict, NotFound) as exc:
                    log.info("Job %s could not be finished: %s", job_id, exc)

        if input is not None:
            try:
                event.cache["input"] = parse(input, acked.input, what="input")
            except Invalid as exc:
                await finish(error=exc.message, kind="invalid_input")
                return
        try:
            with anyio.fail_after(timeout) if timeout is not None else nullcontext():
                result = handler(event, tick)
                if inspect.isawaitable(result):
                    result = await result
            outcome = _outcome(result)
        except TimeoutError:
            await finish(error=f"Timed out after {timeout:g}s.", kind="timeout")
        except Exception as exc:
            log.exception("Job %s (%s) failed", job_id, event.context.job)
            await finish(error=str(exc) or type(exc).__name__)
        else:
            await finish(outcome=outcome)

    on_ready.__qualname__ = f"job_handler({job!r}, {getattr(handler, '__qualname__', handler)})"

    def plugin(listener: Listener) -> None:
        listener.on(JOB_READY, {"job": job}, on_ready)

    return plugin
