"""The event stream over a websocket, and `run_listener`: a Listener served from another process.

```python
async with Client(url, token=token) as client:
    await run_listener(client, listener, agent="exports")   # until cancelled; then drains
```

The stream reconnects on its own (with backoff, to the next server URL) and
resumes after the last event it delivered, so a restart or failover of the
server costs no event and repeats none.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import BaseModel

from listener.channel import Calls
from listener.errors import RateLimited
from listener.listener import Listener
from listener.models import Event
from listener.runner import Runner
from listener.tasks import task_scope
from listener.topics import JOB_READY

if TYPE_CHECKING:
    from listener.client import Client

__all__ = ["EventStream", "StreamState", "run_listener"]

log = logging.getLogger("listener.stream")

_BUFFER: Final = 100
"""Events sent ahead of the consumer at most: the stream's window (the server waits for it to move)."""

_RETRYABLE = (ConnectionError, RateLimited)
"""Failures worth another try later (ServerUnavailable is a ConnectionError); any other error is final."""


class _Message(BaseModel):
    """A message from the server: `events` (a batch), `event` (one), `answers` (to calls), or `error`;
    other fields are ignored."""

    type: str
    events: list[Event] = []
    event: Event | None = None
    answers: list[dict[str, Any]] = []
    error: Any = None


class StreamState(enum.Enum):
    """Where an EventStream is in its life: it opens once and closes once."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class EventStream:
    """The event log as an async iterator of Events, live, over a websocket that reconnects itself.

    Get one from `client.stream(...)` and use it as `async with client.stream(agent="w") as events:
    async for event in events: ...`. Entering it connects (raising ServerUnavailable if no server
    accepts, or the server's error such as Unauthorized); afterwards a dropped connection is
    retried with exponential backoff, each try on the next server URL, and the stream resumes
    after the last event it delivered. Only an error the server answers (a revoked token...)
    ends it: iterating then raises that error.
    """

    def __init__(
        self,
        client: Client,
        *,
        after: int | None = None,
        agent: str | None = None,
        topics: Sequence[str] = (),
        filter: Mapping[str, Any] | None = None,
        share: bool = False,
        ready: Sequence[Sequence[Mapping[str, Any]]] | None = None,
        calls: bool = False,
        backoff_start: float = 0.1,
        backoff_factor: float = 2.0,
        backoff_max: float = 5.0,
        backoff_jitter: float = 0.5,
    ) -> None:
        if backoff_start <= 0 or backoff_factor < 1 or backoff_max < backoff_start or not 0 <= backoff_jitter <= 1:
            raise ValueError("Backoff needs start > 0, factor >= 1, max >= start and 0 <= jitter <= 1.")
        self.agent = agent
        self.state = StreamState.NEW
        self.start: int | None = None
        """The seq the first connection started after (the caller's `after`, or the agent's cursor)."""
        self.position = after
        """The seq of the last event received (delivered or queued for the reader); a reconnect resumes after it."""
        self.acked: int | None = None
        """The highest seq acknowledged; re-sent after each reconnect."""
        self.connections = 0
        """How many times the websocket was opened (1 + the reconnects)."""
        self.takes_calls = False
        """Whether the server takes job calls over this socket (the worker channel; its `ready` says so)."""
        self.calls = Calls()
        self._carries_calls = calls  # once open, the client's job calls go over this socket (if no other has them)
        self._unsent: list[str] = []
        self._sending_calls = False
        self._client = client
        # Batched: a frame carries every event ready when the server wrote it (fewer writes and reads).
        self._query: list[tuple[str, str]] = [("batch", "true"), *(("topic", topic) for topic in topics)]
        self._taken = 0  # events taken (or skipped) since the server was last told: its window's credit
        if agent is not None:
            self._query.append(("agent", agent))
        if filter is not None:
            self._query.append(("filter", json.dumps(dict(filter))))
        if share:
            if agent is None:
                raise ValueError("Only an agent's streams share its jobs: pass agent= with share=True.")
            self._query.append(("share", "true"))
        # Sent on the first connection only: a worker that starts gets the jobs still ready for it.
        self._ready = None if ready is None else json.dumps([[dict(f) for f in filters] for filters in ready])
        self._listens = False  # the server said its reconnects may send the filters again as `listens`
        self._backoff = (backoff_start, backoff_factor, backoff_max, backoff_jitter)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._index = 0
        self._error: Exception | None = None
        self._send_lock = anyio.Lock()
        # Shielded so that a caller's cancellation cannot cut the socket mid-close: only __aexit__ stops the pump.
        self._pump_scope = anyio.CancelScope(shield=True)
        self._stack = AsyncExitStack()
        self._events_in: MemoryObjectSendStream[Event] | None = None
        self._events_out: MemoryObjectReceiveStream[Event] | None = None

    def __repr__(self) -> str:
        return f"EventStream(agent={self.agent!r}, position={self.position}, state={self.state.value})"

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> EventStream:
        if self.state is not StreamState.NEW:
            raise RuntimeError("An event stream opens once; call client.stream() again for a new one.")
        self._ws = await self._connect_first()
        self.state = StreamState.OPEN
        if self._carries_calls and self._client.channel is None:
            self._client.channel = self
        # Unbounded here, bounded by the window the server keeps to (see _open).
        self._events_in, self._events_out = anyio.create_memory_object_stream[Event](math.inf)
        try:
            tg = await self._stack.enter_async_context(anyio.create_task_group())
            tg.start_soon(self._pump)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.state is StreamState.CLOSED:
            return
        self.state = StreamState.CLOSED
        if self._client.channel is self:
            self._client.channel = None  # calls made from now on go over HTTP
        ws = self._ws
        with anyio.CancelScope(shield=True):
            if ws is not None:
                # A clean close handshake: the server has handled every ack sent before it.
                await ws.close()
        self._pump_scope.cancel()
        # Not shielded (the task group was entered before any shield here), but the pump ends at once:
        # its scope is cancelled. The body's exception propagates as itself, not in an ExceptionGroup.
        try:
            await self._stack.aclose()
        finally:  # also when the caller's cancellation comes through the task group's exit
            with anyio.CancelScope(shield=True):
                if self._ws is not None and self._ws is not ws:
                    await self._ws.close()
                for end in (self._events_in, self._events_out):
                    if end is not None:
                        end.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._events_out is None:
            raise RuntimeError("Open the stream first: `async with client.stream(...) as events:`.")
        try:
            event = await self._events_out.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None
        await self._took(1)
        return event

    async def _took(self, events: int) -> None:
        """Count events taken off the socket's window; past half of it, give them back to the server."""
        self._taken += events
        if self._taken < _BUFFER // 2:
            return
        taken, self._taken = self._taken, 0
        ws = self._ws
        if ws is None or ws.closed:
            return  # the next socket starts with a window of its own
        try:
            await ws.send_str('{"type":"window","events":' + str(taken) + "}")
        except (ConnectionError, aiohttp.ClientError):
            pass

    async def ack(self, seq: int) -> None:
        """Tell the server every event up to `seq` was handled: the agent's cursor moves there.

        Acks that do not move the cursor forward are dropped. While disconnected the ack
        is remembered and sent as soon as the stream reconnects.
        """
        if self.agent is None:
            raise RuntimeError("This stream has no agent, so it has no cursor to move; open it with "
                               "client.stream(agent=...).")
        if self.acked is not None and seq <= self.acked:
            return
        self.acked = seq
        await self._send_ack()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """Make a job call over the socket (the worker channel): its answer's body, or the error REST would raise.

        A call whose answer a dropped socket lost is sent again after the reconnect, with its id, and the
        server answers it from memory rather than running it twice. Raises ServerUnavailable when no answer
        comes within the client's timeout or the stream closes first.
        """
        from listener.client import ServerUnavailable, error_from_answer  # client.py imports this module

        call_id, pending = self.calls.new(method, path, body)
        if self._ws is None or self._ws.closed:
            log.warning("Cannot send %s %s yet: the event stream is reconnecting; it goes once it is back.",
                        method, path)
        try:
            await self._send_calls([pending.frame])
            with anyio.move_on_after(self._client._timeout):
                await pending.done.wait()
        finally:
            self.calls.forget(call_id)
        if not pending.done.is_set() or pending.status == 0:
            raise ServerUnavailable(f"No answer to {method} {path} over the event stream from "
                                    f"{self._client.urls[self._index]}.", urls=[self._client.urls[self._index]])
        if pending.status >= 400:
            raise error_from_answer(pending.status, pending.answer, f"{method} {path}")
        return pending.answer

    async def _send_calls(self, frames: list[str]) -> None:
        # Whoever finds no send under way sends, one frame at a time, every call made meanwhile.
        self._unsent.extend(frames)
        if self._sending_calls:
            return
        self._sending_calls = True
        try:
            # One turn of the loop first: the calls the other handlers make in it share this frame.
            await anyio.lowlevel.checkpoint()
            while self._unsent:
                ws = self._ws
                if ws is None or ws.closed:
                    self._unsent.clear()  # still waiting for their answers: sent again after the reconnect
                    return
                batch, self._unsent = self._unsent, []
                try:
                    await ws.send_str('{"type":"calls","calls":[' + ",".join(batch) + "]}")
                except (ConnectionError, aiohttp.ClientError):
                    self._unsent.clear()
                    return
        finally:
            self._sending_calls = False

    # -- connection ---------------------------------------------------------------

    async def _send_ack(self) -> None:
        async with self._send_lock:
            ws = self._ws
            if ws is None or ws.closed or self.acked is None:
                return
            try:
                await ws.send_json({"type": "ack", "seq": self.acked})
            except (ConnectionError, aiohttp.ClientError) as exc:
                log.debug("Ack %d not sent (%s); it is sent again after the reconnect.", self.acked, exc)

    async def _open(self, index: int) -> aiohttp.ClientWebSocketResponse:
        """Connect to the server at `index` and read its `ready` message."""
        query = list(self._query)
        if self.position is not None:
            query.append(("after", str(self.position)))
        if self._ready is not None and self.connections == 0:
            query.append(("ready", self._ready))
        elif self._ready is not None and self._listens:
            query.append(("listens", self._ready))  # the same filters, for the server's list of workers only
        # The socket is always read, so that the answers to calls behind events get through: the server sends
        # at most a window of events ahead of what this stream took (less what a dropped socket left here).
        buffered = self._events_out.statistics().current_buffer_used if self._events_out is not None else 0
        query.append(("window", str(max(1, _BUFFER - buffered))))
        self._taken = 0
        ws = await self._client._ws_connect(index, query)
        try:
            with anyio.fail_after(self._client._timeout):
                first = await ws.receive()
            ready = json.loads(first.data) if first.type is aiohttp.WSMsgType.TEXT else {}
            if ready.get("type") != "ready":
                raise ConnectionError(f"The server at {self._client.urls[index]} sent {first.data!r} "
                                      "instead of the stream's ready message.")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await ws.close()
            raise
        self.takes_calls = bool(ready.get("calls"))
        self._listens = bool(ready.get("listens"))
        if self.position is None:
            self.position = int(ready["position"])
        if self.start is None:
            self.start = self.position
        self._index = index
        self.connections += 1
        return ws

    async def _connect_first(self) -> aiohttp.ClientWebSocketResponse:
        # The first connection tries each URL once and then gives up, so a wrong URL is an error, not a hang.
        failures: list[str] = []
        for _ in self._client.urls:
            index = self._client._current
            try:
                return await self._open(index)
            except _RETRYABLE as exc:
                failures.append(str(exc))
                self._client._fail_over(index)
        from listener.client import ServerUnavailable  # client.py imports this module: import when needed

        raise ServerUnavailable(f"Cannot open the event stream: {'; '.join(failures)}", urls=self._client.urls)

    async def _reconnect(self) -> aiohttp.ClientWebSocketResponse:
        start, factor, cap, jitter = self._backoff
        attempt = 0
        while True:
            delay = min(cap, start * factor**attempt)
            await anyio.sleep(delay * (1 - jitter * random.random()))
            attempt += 1
            index = self._client._current
            try:
                return await self._open(index)
            except _RETRYABLE as exc:
                log.warning("Event stream: reconnecting failed (try %d): %s", attempt, exc)
                self._client._fail_over(index)

    async def _pump(self) -> None:
        assert self._events_in is not None and self._ws is not None
        with self._pump_scope:
            try:
                while True:
                    await self._read(self._ws)
                    if self.state is StreamState.CLOSED:
                        return
                    log.warning("Event stream to %s dropped (close code %s); reconnecting after seq %s.",
                                self._client.urls[self._index], self._ws.close_code, self.position)
                    self._client._fail_over(self._index)
                    self._ws = None
                    ws = await self._reconnect()
                    self._ws = ws
                    await self._send_ack()
                    await self._send_calls(self.calls.unanswered())  # the answers the drop lost
            except Exception as exc:
                # Final (the server refused the reconnect): the reader raises it after the buffered events.
                self._error = exc
            finally:
                self._events_in.close()
                self.calls.abandon()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Deliver the socket's events until it closes, whoever closes it."""
        assert self._events_in is not None
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                return
            # Parsed and validated in one pass (no dicts in between): most messages are events.
            data = _Message.model_validate_json(message.data)
            if data.type == "events" or data.type == "event":
                skipped = 0
                for event in data.events if data.event is None else [data.event]:
                    if self.position is not None and event.seq <= self.position:
                        skipped += 1
                        continue
                    self.position = event.seq
                    self._events_in.send_nowait(event)  # never waits: the window bounds what comes
                if skipped:
                    await self._took(skipped)
            elif data.type == "answers":
                for answer in data.answers:
                    self.calls.answered(answer)
            elif data.type == "error":
                log.warning("The event stream refused a message: %s", data.error)


def ready_filters(listener: Listener) -> list[list[dict[str, Any]]]:
    """The filters of each of `listener`'s handlers that job:ready reaches, as a worker sends them when it starts."""
    return [[dict(f.spec) for f in registration.filters] for registration in listener.registrations()
            if registration.topic(JOB_READY)]


class _Source:
    """The stream as a Runner's source: a final stream error ends the source, so the runner drains first."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.error: Exception | None = None

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.stream.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise StopAsyncIteration from None


async def run_listener(
    client: Client,
    listener: Listener,
    *,
    agent: str,
    concurrency: int = 10,
    grace: float = 10.0,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `listener` from this process: events come from the server's stream, handlers act through `client`.

    Runs until cancelled. The agent's cursor is kept by the server: a new agent starts
    at the newest event, a known one resumes after the last event it finished. On
    cancellation it stops taking events, gives in-flight handlers `grace` seconds to
    finish, acknowledges what finished, and only then lets the cancellation through.
    Reports readiness through `task_status` once the stream is connected.

    The server sends only the events on the topics the listener's handlers are subscribed to when
    it starts (most of a busy log is not for a given worker): a handler added later on another
    topic gets its events after a restart. When it starts, every job still ready for one of its
    job:ready handlers is announced again for it (ready jobs are a queue). Workers run with one
    agent name share its job:ready events: each goes to one of them (see
    `listener.platform.sharing`), every other event to all.
    """
    topics = sorted({registration.topic.pattern for registration in listener.registrations()})
    # The handlers' job calls go over the stream's socket (the worker channel) while it runs.
    async with client.stream(agent=agent, topics=topics, share=True, ready=ready_filters(listener),
                             calls=True) as stream:
        runner = Runner(listener, client, concurrency=concurrency, grace=grace, save_cursor=stream.ack,
                        agent=agent)
        source = _Source(stream)
        finished = anyio.Event()

        async def run() -> None:
            # Shielded: the caller's cancellation reaches the runner only as stop(), so handlers can drain.
            with anyio.CancelScope(shield=True):
                try:
                    await runner.run(source, start=stream.start or 0)
                finally:
                    finished.set()

        async with task_scope(cancel_on_exit=False) as tg:
            tg.start_soon(run)
            task_status.started()
            try:
                await finished.wait()
            finally:
                runner.stop()
                with anyio.CancelScope(shield=True):
                    await finished.wait()
    if source.error is not None:
        raise source.error
