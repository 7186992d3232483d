"""Who listens: the workers connected to this process, and which job:ready events each would take.

A worker is an agent's event-stream socket (`listener run`, or any client stream with `agent=`) or a
listener running in-process (`platform.running`, the system agent). Each registers here while it runs,
with what decides whether a job reaches it: its topics, its filter, the filters of its job:ready handlers
when it sent them (`ready` on a worker's first connection, `listens` on its reconnects) and, for sockets,
what its user may see. `takes(event)` asks exactly the question the stream asks of a real job:ready, so
"no worker is listening for this job" is the stream's own answer, not a guess from the type's name.

The registry is this process's only: replicas on one PostgreSQL database each know their own workers
(see queues.py for what the pages say about that). Whoever wants to know when workers come and go
waits on `changed()` (the event stream's `?workers=true` sockets do, and tell the web page).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import anyio

from listener.models import Event
from listener.platform.sharing import Member

__all__ = ["Connection", "Workers"]


@dataclass(eq=False)
class Connection:
    """One worker while it is connected."""

    id: str
    kind: Literal["stream", "in-process"]
    agent: str
    user: str | None
    takes: Callable[[Event], bool]
    """Whether a job:ready event would reach it (its topics, filters, job:ready handlers and its user's view)."""
    connected_at: datetime
    topics: list[str] = field(default_factory=list)
    filter: Any = None
    ready: Any = None
    """The filters of its job:ready handlers as it sent them, or None when it did not say."""
    cursor: str | None = None
    """The name of the agent's stored cursor (None: it keeps none)."""
    shared: bool = False
    address: str | None = None
    position: Callable[[], int | None] = lambda: None
    """The seq up to which it handled every event it was sent, when this process knows (else the stored cursor)."""
    member: Member | None = None
    """Its place in its agent's sharing group: the job:ready events handed to it and not acked past."""
    acked: set[str] = field(default_factory=set)
    """Jobs it acked over its socket's worker channel and has not completed or failed there (maybe ended since)."""

    def handed(self) -> list[str]:
        """The ids of the ready jobs handed to it (a sharing socket) that it has not acked past, oldest first."""
        if self.member is None:
            return []
        return list(dict.fromkeys(self.member.pending[seq] for seq in sorted(self.member.pending)))


class Workers:
    """The workers of this process."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)  # ids of two replicas' workers do not collide
        self._changed = anyio.Event()

    def add(self, **fields: Any) -> Connection:
        """Register a worker (the fields of a Connection but its id); it stays until `remove`."""
        connection = Connection(id=f"wk_{self._prefix}{next(self._ids)}", **fields)
        self._connections[connection.id] = connection
        self._change()
        return connection

    def remove(self, connection: Connection) -> None:
        if self._connections.pop(connection.id, None) is not None:
            self._change()

    def __iter__(self) -> Any:
        return iter(list(self._connections.values()))

    def __len__(self) -> int:
        return len(self._connections)

    def taking(self, event: Event) -> list[Connection]:
        """The workers that this job:ready event would reach."""
        return [c for c in self._connections.values() if c.takes(event)]

    async def changed(self) -> None:
        """Return once a worker has come or gone."""
        await self._changed.wait()

    def _change(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
