"""PostgreSQL's tail: a replica publishes the log in order, its own events from memory and the others' from the table.

Each replica publishes the log to its own subscribers from one "tail" task that
reads new events in order. It is woken by its own commits, by LISTEN/NOTIFY for
other replicas' commits, and by a slow timer that covers notifications missed
while the listening connection was being re-established. Events this replica
committed itself are published from memory when they are next in order; the
table is read (and its rows parsed) only for other replicas' events: when one
of their notifications comes, when ours leave a gap before them, and on the
timer.

The part of PostgresStore (postgres.py) that publishes; it declares the state of the store it uses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import asyncpg

from listener.models import Event
from listener.platform.store.base import Publisher, publish
from listener.platform.store.postgres_writer import CHANNEL, TRANSIENT

__all__ = ["PostgresTail"]

log = logging.getLogger("listener.store")


class PostgresTail:
    """PostgresStore's publishing of the log: the tail task, and the listening connection that wakes it."""

    dsn: str
    poll_interval: float
    _publishers: list[Publisher]
    _tail: int
    """The seq of the last event published."""
    _wake: anyio.Event
    _committed: dict[int, Event]
    _own_heads: set[int]
    _foreign: bool

    if TYPE_CHECKING:
        @property
        def settings(self) -> dict[str, str]: ...

        async def read_events(self, after: int, limit: int, job_id: str | None = None) -> list[Event]: ...

    async def _tail_forever(self) -> None:
        while True:
            with anyio.move_on_after(self.poll_interval) as timer:
                await self._wake.wait()
            if timer.cancelled_caught:
                self._foreign = True  # in case a notification was missed
            self._wake = anyio.Event()
            try:
                while events := self._take_committed() or await self._read_foreign():
                    self._tail = events[-1].seq
                    publish(self._publishers, events)
            except TRANSIENT as exc:
                log.warning("Could not read new events (%s); trying again.", exc)
                await anyio.sleep(0.2)

    def _notified(self, payload: str) -> None:
        """A commit's notification (its last seq): ours wake the tail by themselves; another replica's must."""
        try:
            head = int(payload)
        except ValueError:
            head = -1
        if head in self._own_heads or head <= self._tail:
            self._own_heads.discard(head)
            return
        self._foreign = True
        self._wake.set()

    def _take_committed(self) -> list[Event]:
        """Our own committed events that come next after the tail, in order."""
        run: list[Event] = []
        while (event := self._committed.pop(self._tail + 1 + len(run), None)) is not None:
            run.append(event)
        return run

    async def _read_foreign(self) -> list[Event]:
        """The next events from the table, if another replica's may come next (else none)."""
        if not self._foreign and not self._committed:
            return []  # nothing but our own commits since the last read, and they are all published
        # A notification came, or our next event is not next: another replica's commit is in between.
        self._foreign = False
        events = await self.read_events(self._tail, 1000)
        if events:
            last = events[-1].seq
            if self._committed:
                self._committed = {seq: e for seq, e in self._committed.items() if seq > last}
            if self._own_heads:  # a notification of ours that never came (the listening connection was down)
                self._own_heads = {head for head in self._own_heads if head > last}
        return events

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, server_settings=self.settings)
            except TRANSIENT as exc:
                log.warning("Cannot listen for other replicas' events (%s); retrying in %.1fs.", exc, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = anyio.Event()
            try:
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda _c, _p, _ch, payload: self._notified(payload))
                delay = 0.1
                self._foreign = True  # catch up on what was committed while we were not listening
                self._wake.set()
                await lost.wait()
                log.warning("The listening connection was lost; reconnecting.")
            finally:
                with anyio.CancelScope(shield=True):
                    if not conn.is_closed():
                        await conn.close()
