"""The event log's reading side: in-process fan-out and ordered, gap-free subscriptions.

The store appends events inside the transactions that cause them and hands each
committed batch to `EventLog.publish`, which fans it out with pyee. A
subscription reads the backlog from the store, then follows live events; when
it falls too far behind (its buffer fills) or sees a gap, it goes back to the
store, so a slow reader gets the backlog rather than losing events.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

import anyio
from pyee import EventEmitter

from listener.models import Event
from listener.platform.store.base import Store
from listener.topics import JOB_READY

__all__ = ["EventLog", "Subscription", "ready_between"]

log = logging.getLogger("listener.eventlog")

_BATCH = "batch"

SCAN_LIMIT = 10_000
"""Events read at most by `ready_between`."""


async def ready_between(store: Store, after: int, upto: int, wanted: Callable[[Event], bool]) -> dict[str, None]:
    """The jobs with a job:ready that `wanted` takes in the log after `after` up to `upto`, in order.

    Reads at most the first SCAN_LIMIT events of that stretch (and says so in the log when it stops short).
    """
    job_ids: dict[str, None] = {}
    position, scanned = after, 0
    while position < upto and scanned < SCAN_LIMIT:
        events = await store.read_events(position, 500)
        if not events:
            break
        for event in events:
            if event.seq > upto:
                break
            if event.topic == JOB_READY and event.context.job_id is not None and wanted(event):
                job_ids[event.context.job_id] = None
        position, scanned = events[-1].seq, scanned + len(events)
    if scanned >= SCAN_LIMIT and position < upto:
        log.warning("Only the first %d events after position %d were checked for ready jobs.", SCAN_LIMIT, after)
    return job_ids


class EventLog:
    """Fans committed events out to in-process subscribers, in `seq` order."""

    def __init__(self, store: Store, *, buffer: int = 10_000) -> None:
        self.store = store
        self.buffer = buffer
        self._emitter = EventEmitter()
        self.last_seq = 0
        store.add_publisher(self.publish)

    def publish(self, events: Sequence[Event]) -> None:
        """Called by the store after each commit."""
        self.last_seq = max(self.last_seq, events[-1].seq)
        self._emitter.emit(_BATCH, events)

    def subscribe(self, after: int) -> Subscription:
        """Every event with `seq > after`, in order: first the stored backlog, then live ones."""
        return Subscription(self, after)

    def on_batch(self, callback: Callable[[Sequence[Event]], None]) -> None:
        """Call `callback` with every committed batch of events, in order."""
        self._emitter.add_listener(_BATCH, callback)

    def off_batch(self, callback: Callable[[Sequence[Event]], None]) -> None:
        self._emitter.remove_listener(_BATCH, callback)


class Subscription:
    """An async iterator over the log from a position, robust to bursts and gaps.

    Use it as a context manager so it stops receiving live events when done.
    """

    def __init__(self, log: EventLog, after: int, *, page: int = 500) -> None:
        self._log = log
        self.position = after
        self._page = page
        self._live: deque[Event] = deque()
        self._overflowed = False
        self._wake = anyio.Event()
        self._attached = False

    async def __aenter__(self) -> Subscription:
        self._attach()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _attach(self) -> None:
        if not self._attached:
            self._log.on_batch(self._on_batch)
            self._attached = True

    def close(self) -> None:
        if self._attached:
            self._log.off_batch(self._on_batch)
            self._attached = False

    def _on_batch(self, events: Sequence[Event]) -> None:
        if self._overflowed:
            pass  # the next catch-up reads these from the store
        elif len(self._live) + len(events) > self._log.buffer:
            # Too far behind: drop the buffer and catch up from the store instead.
            self._overflowed = True
            self._live.clear()
        else:
            self._live.extend(events)
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        self._attach()
        while True:
            async for event in self._catch_up():
                yield event
            while self._live and not self._overflowed:
                event = self._live.popleft()
                if event.seq <= self.position:
                    continue
                if event.seq != self.position + 1:
                    # A gap: an event this subscriber never saw live. Read it from the store.
                    self._live.appendleft(event)
                    break
                self.position = event.seq
                yield event
            else:
                if not self._overflowed and self.position >= self._log.last_seq:
                    self._wake = anyio.Event()
                    if not self._live:
                        await self._wake.wait()

    async def _catch_up(self) -> AsyncIterator[Event]:
        """Read from the store while the position is behind what was published."""
        while self._overflowed or self._needs_store():
            self._overflowed = False
            events = await self._log.store.read_events(self.position, self._page)
            if not events:
                return
            for event in events:
                self.position = event.seq
                yield event

    def _needs_store(self) -> bool:
        first = self._live[0].seq if self._live else math.inf
        return self.position < min(first - 1, self._log.last_seq)
