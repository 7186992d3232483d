"""Runner: delivers events from a source to a Listener's handlers.

Handlers matching one event run one at a time, in registration order (as
Flatfile does, to avoid races between them); different events run concurrently
up to `concurrency`, on that many worker tasks at most (started as they are
needed and kept: a task per event would cost more than most handlers). A
handler that raises is logged with its event and never stops the others. The
runner tracks the highest `seq` below which every event has finished, its
cursor, so a named agent resumes after the last event it finished: delivery is
at least once, in order.

Ready jobs are a queue with priorities: while every slot is taken, the runner reads up to `lookahead`
events ahead and holds them; a slot that frees goes to the held event that comes first, the events
that are not job:ready in order before any job:ready, then the job:ready of the highest priority (the
job's, in its payload), oldest first within one. A runner told to stop drops what it holds (its cursor
stays before it, so those events come again).
"""

from __future__ import annotations

import enum
import heapq
import inspect
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from math import inf
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from listener.api import Api
from listener.errors import Conflict
from listener.listener import Listener
from listener.logs import LogContext, log_context
from listener.models import MAX_PRIORITY, Event
from listener.platform.metrics import HANDLER_SECONDS
from listener.topics import JOB_READY

__all__ = ["Runner", "RunnerState"]

log = logging.getLogger("listener.runner")

CursorSink = Callable[[int], Awaitable[None]]

_NOT_QUEUED = -(MAX_PRIORITY + 1)
"""The order key of a held event that is not job:ready: before every job:ready (keys are negated priorities)."""


class RunnerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Runner:
    """Runs a Listener against a stream of events.

    Args:
        listener: whose handlers to run.
        api: what handlers get as `event.api`.
        concurrency: how many events may be dispatched at once.
        grace: seconds in-flight handlers get to finish when the runner stops.
        save_cursor: called (at most every `cursor_interval` seconds, and at stop)
            with the seq below which every event has finished.
        agent: the agent's name, on every line logged while its handlers run.
        lookahead: how many events to read and hold while every slot is taken, so that the
            job:ready of higher priority among them go first (0: take events strictly in order).
    """

    def __init__(
        self,
        listener: Listener,
        api: Api,
        *,
        concurrency: int = 10,
        grace: float = 10.0,
        save_cursor: CursorSink | None = None,
        cursor_interval: float = 0.2,
        agent: str | None = None,
        lookahead: int = 100,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}.")
        if lookahead < 0:
            raise ValueError(f"lookahead must not be negative, not {lookahead}.")
        if grace < 0:
            raise ValueError(f"grace must not be negative, not {grace}.")
        self.listener = listener
        self.api = api
        self.concurrency = concurrency
        self.grace = grace
        self.agent = agent
        self.state = RunnerState.NEW
        self.dispatched = 0
        self.failures = 0
        self._save_cursor = save_cursor
        self._cursor_interval = cursor_interval
        self._slots = anyio.Semaphore(concurrency)
        self._reading = anyio.CancelScope()
        self._inflight: set[int] = set()
        self._position = 0
        self._saved = 0
        self._changed = anyio.Event()
        self._waiting = False
        # Admitted events go to the workers through this stream; `_idle` counts the workers waiting on it
        # that no event has been handed to yet (so an event finds one, or a new worker is started).
        self._queue: MemoryObjectSendStream[tuple[Event, list[Any]]] | None = None
        self._workers = 0
        self._idle = 0
        # Events read while every slot was taken: (order key, seq, event, registrations), a heap.
        self._held: list[tuple[int, int, Event, list[Any]]] = []
        self._lookahead = lookahead
        self._room: anyio.Event | None = None  # set when a held event goes to a slot
        self._stopping = False
        self._floor: int | None = None  # before the events dropped at stop: the cursor stays there

    @property
    def cursor(self) -> int:
        """The highest seq such that it and every event before it have finished."""
        cursor = min(self._inflight) - 1 if self._inflight else self._position
        return cursor if self._floor is None else min(cursor, self._floor)

    async def run(self, source: AsyncIterable[Event], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  start: int = 0) -> None:
        """Dispatch events from `source` until `stop()` is called or the source ends."""
        if self.state is not RunnerState.NEW:
            raise RuntimeError("A Runner runs once; create a new one to run again.")
        self.state = RunnerState.RUNNING
        self._position = self._saved = start
        queue, dispatching = anyio.create_memory_object_stream[tuple[Event, list[Any]]](inf)
        try:
            with queue, dispatching:
                self._queue = queue
                await self._run(source, dispatching, task_status)
        finally:
            self.state = RunnerState.STOPPED
            if self._save_cursor is not None and self.cursor > self._saved:
                with anyio.CancelScope(shield=True):
                    await self._save_cursor(self.cursor)

    async def _run(self, source: AsyncIterable[Event], dispatching: MemoryObjectReceiveStream[Any],
                   task_status: TaskStatus[None]) -> None:
        async with anyio.create_task_group() as dispatches:
            if self._save_cursor is not None:
                dispatches.start_soon(self._cursor_loop)
            task_status.started()
            with self._reading:
                async for event in source:
                    await self._admit(event, dispatches, dispatching)
            self.state = RunnerState.STOPPING
            if self._stopping and self._held:
                dropped = [seq for _, seq, _, _ in self._held]
                self._held.clear()
                self._inflight.difference_update(dropped)
                self._floor = min(dropped) - 1
            await self._drain()
            dispatches.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop taking events; in-flight handlers get `grace` seconds to finish."""
        self._stopping = True
        self._reading.cancel()

    async def _admit(self, event: Event, dispatches: TaskGroup,
                     dispatching: MemoryObjectReceiveStream[tuple[Event, list[Any]]]) -> None:
        registrations = self.listener.handlers_for(event)
        if not registrations:
            self._finish(event.seq, started=True)
            return
        self._inflight.add(event.seq)
        self._position = max(self._position, event.seq)
        if not self._held:  # (while some are held, every slot is taken)
            try:
                # A free slot is taken without a checkpoint: anyio's acquire makes two cancel scopes to yield.
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                pass
            else:
                self._hand_on(event, registrations)
                if self._idle:
                    self._idle -= 1
                elif self._workers < self.concurrency:
                    self._workers += 1
                    dispatches.start_soon(self._work, dispatching)
                return
        key = -event.payload.get("priority", 0) if event.topic == JOB_READY else _NOT_QUEUED
        heapq.heappush(self._held, (key, event.seq, event, registrations))
        while len(self._held) > self._lookahead:  # read no further until a slot frees
            room = self._room = anyio.Event()
            await room.wait()

    def _hand_on(self, event: Event, registrations: list[Any]) -> None:
        assert self._queue is not None
        self._queue.send_nowait((event, registrations))

    async def _work(self, events: MemoryObjectReceiveStream[tuple[Event, list[Any]]]) -> None:
        while True:
            try:
                item = events.receive_nowait()
            except anyio.WouldBlock:
                self._idle += 1
                item = await events.receive()
            await self._dispatch(*item)

    async def _drain(self) -> None:
        with anyio.move_on_after(self.grace):
            while self._inflight:
                await self._wait_cursor()
        if self._inflight:
            log.warning("Stopping with %d event(s) still running after %.1fs; they will be delivered again.",
                        len(self._inflight), self.grace)

    async def _dispatch(self, event: Event, registrations: list[Any]) -> None:
        finished = False
        started = time.perf_counter()
        try:
            # Set once per dispatch rather than per handler, to keep the hot path cheap: every line logged by
            # these handlers, by the threads and tasks they start, and by this runner about them carries the job.
            with self._log_context(event):
                ev = event.for_dispatch(self.api)
                for registration in registrations:
                    await self._call(registration.handler, registration.is_async, ev, event)
                for fn in ev.after_all_callbacks():
                    await self._call(fn, inspect.iscoroutinefunction(fn), None, event)
            self.dispatched += 1
            finished = True
            HANDLER_SECONDS.labels(event.topic).observe(time.perf_counter() - started)
        finally:
            if self._held and not self._stopping:
                # This slot goes to the held event that comes first; this worker (or an idle one) takes it.
                _, _, held, registrations = heapq.heappop(self._held)
                self._hand_on(held, registrations)
                if self._idle:
                    self._idle -= 1
                if self._room is not None:
                    self._room.set()
                    self._room = None
            else:
                self._slots.release()
            # A dispatch cancelled past the grace did not finish: its seq stays in flight,
            # so the cursor stays before it and the event is delivered again.
            if finished:
                self._finish(event.seq)

    def _log_context(self, event: Event) -> LogContext:
        attempt = event.payload.get("attempt")
        if event.topic == JOB_READY:
            # A ready job's payload counts the attempts made so far; its handler runs the next one
            # (the ack that claims it adds one), and that is the attempt its lines are about.
            attempt = (attempt or 0) + 1
        return log_context(job_id=event.context.job_id, attempt=attempt, job=event.context.job, agent=self.agent,
                           topic=event.topic, event_id=event.id)

    async def _call(self, fn: Callable[..., Any], is_async: bool, arg: Event | None, event: Event) -> None:
        args = () if arg is None else (arg,)
        try:
            if is_async:
                await fn(*args)
            else:
                result = await anyio.to_thread.run_sync(fn, *args)
                if inspect.isawaitable(result):
                    await result
        except Conflict as exc:
            if event.topic == JOB_READY and isinstance(exc.details, dict) and exc.details.get("move") == "ack" \
                    and exc.details.get("jobId") == event.context.job_id:
                # job:ready is at-least-once and the ack is the claim: another worker (or an earlier
                # delivery of the same job:ready) got there first. Not this handler's failure.
                log.info("Job %s was claimed by another worker first; %s leaves it.", event.context.job_id,
                         getattr(fn, "__qualname__", fn))
                return
            self._failed(fn, event)
        except Exception:
            self._failed(fn, event)

    def _failed(self, fn: Callable[..., Any], event: Event) -> None:
        self.failures += 1
        log.exception("Handler %s failed on %s (seq %d, job %s)", getattr(fn, "__qualname__", fn),
                      event.topic, event.seq, event.context.job_id)

    def _finish(self, seq: int, *, started: bool = False) -> None:
        if started:
            self._position = max(self._position, seq)
        self._inflight.discard(seq)
        if self._waiting:
            # Wake everyone waiting for progress, then arm a fresh event for the next change.
            self._waiting = False
            self._changed.set()
            self._changed = anyio.Event()

    async def _wait_cursor(self) -> None:
        self._waiting = True
        await self._changed.wait()

    async def _cursor_loop(self) -> None:
        assert self._save_cursor is not None
        while True:
            cursor = self.cursor
            if cursor > self._saved:
                await self._save_cursor(cursor)
                self._saved = cursor
                await anyio.sleep(self._cursor_interval)
            else:
                await self._wait_cursor()
