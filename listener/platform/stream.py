"""The live event stream: a websocket that sends the log in order from a position, then live events.

Client → server messages: `{"type": "ack", "seq": N}` — every event up to N was
handled (moves the agent's cursor). Server → client: `{"type": "ready", "position",
"head"}` once, then `{"type": "event", "event": {...}}` in `seq` order. A client that
connects with `?batch=true` gets `{"type": "events", "events": [{...}, ...]}` instead:
every event ready to go when the socket is written, in `seq` order, one frame (and one
write) for the lot; batches follow each other in order with no event left out between
them, so the stream is the same sequence either way, only fewer frames.

A named agent with no `after` resumes from its server-side cursor (a new agent
starts at the newest event), so a listener that disconnects or crashes resumes
after the last event it finished. A slow client gets the backlog from the store
(see `Subscription`), never a dropped connection. An agent's sockets that connect
with `?share=true` (run_listener's workers do) share its job:ready events, each to
one of them (see `sharing`).

Ready jobs are a queue, not only a broadcast: a worker that starts (run_listener's first
connection) sends `?ready=[[filter, ...], ...]`, the filters of each of its job:ready handlers,
and every job still ready that one of them takes is announced again for it, oldest first (a new
job:ready; the ack still claims each job once). Other topics keep the broadcast's rule: a new agent
sees them from the moment it connects. A reconnect sends no `ready`: it resumes after its position,
and may say the same filters as `?listens=` (announcing nothing), which the server's `ready` message
invites with `"listens": true`.

An agent's socket is one of this server's workers while it is open (see `workers`): the queues page
lists it, and a ready job that no worker takes says so. A socket opened with `?workers=true` (the web
page's) is sent `{"type": "workers", "connected": N}` whenever a worker connects to this server or leaves.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import WSMsgType, web
from anyio.abc import TaskGroup
from pydantic import Field

from listener.errors import Invalid, Unauthorized
from listener.models import MAX_INT64, Event, Model
from listener.platform.auth import Users, hash_token
from listener.platform.channel import Channel
from listener.platform.eventlog import ready_between
from listener.platform.routes import Call, Route, cursor_name, parse_json, visible_to
from listener.platform.sharing import AgentGroup, Member
from listener.platform.workers import Connection
from listener.tasks import task_scope
from listener.topics import compile_filter, compile_topic

if TYPE_CHECKING:
    from listener.platform import Platform

__all__ = ["BEARER_PROTOCOL", "STREAM_ROUTE", "StreamQuery", "subprotocol_token"]

log = logging.getLogger("listener.stream")

_BATCH_EVENTS = 500
"""Events read ahead for one batched socket; past it the reader waits for the socket."""
_BATCH_BYTES = 256 * 1024
"""A batched frame's size at most (bar a single larger event): far below a client's 4 MiB message limit."""

BEARER_PROTOCOL = "listener.bearer"
"""A browser's WebSocket cannot send an Authorization header, so the web page offers two
subprotocols, `listener.bearer` and its token; the server answers with `listener.bearer` alone."""


def subprotocol_token(request: web.Request) -> str | None:
    """The token a browser sent as its second subprotocol after `listener.bearer`, or None."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == BEARER_PROTOCOL and offered[1]:
        return offered[1]
    return None


class StreamQuery(Model):
    after: int | None = Field(None, ge=0, le=MAX_INT64)
    agent: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")
    topic: list[str] = Field(default_factory=list)
    filter: str | None = None
    batch: bool = False
    share: bool = False
    window: int | None = Field(None, ge=1, le=100_000)
    """With batch: send at most this many events ahead of what the client says it took (`window` messages)."""
    ready: str | None = Field(None, max_length=64 * 1024)
    """A worker starting: JSON `[[filter, ...], ...]`, the filters of each of its job:ready handlers."""
    listens: str | None = Field(None, max_length=64 * 1024)
    """A worker reconnecting: the same filters as `ready`, to say which jobs it takes, with no jobs announced again."""
    workers: bool = False
    """Send `{"type": "workers"}` whenever a worker connects to this server or leaves it (the web page's notes)."""


def _filter(raw: str | None) -> Any:
    if raw is None:
        return compile_filter(None)
    try:
        spec = parse_json(raw)
    except ValueError as exc:
        raise Invalid(f"filter: not valid JSON: {exc}.",
                      details=[{"field": "filter", "message": "malformed"}]) from None
    return compile_filter(spec)


def _ready_wants(raw: str) -> Callable[[Event], bool]:
    """Whether a worker's job:ready handlers take an event: any one handler whose filters all match."""
    details = [{"field": "ready", "message": "expected a JSON list of lists of filters"}]
    try:
        spec = parse_json(raw)
    except ValueError as exc:
        raise Invalid(f"ready: not valid JSON: {exc}.", details=details) from None
    if not isinstance(spec, list) or not all(isinstance(h, list) for h in spec):
        raise Invalid("ready: expected a list with, for each job:ready handler, the list of its filters.",
                      details=details)
    handlers = [[compile_filter(f) for f in filters] for filters in spec]
    return lambda event: any(all(f(event) for f in filters) for filters in handlers)


async def events_stream(call: Call) -> web.WebSocketResponse:
    """The event log as a websocket: backlog from `after` (or the agent's cursor), then live events."""
    from listener.platform.server import AGENTS, ANSWERS, SOCKETS, actor, bearer

    q: StreamQuery = call.query
    topics = [compile_topic(t) for t in q.topic]
    event_filter = _filter(q.filter)
    if q.share and q.agent is None:
        raise Invalid("share: only an agent's streams share its jobs; add agent=NAME.",
                      details=[{"field": "share", "message": "needs agent"}])
    takes_ready = _ready_wants(q.ready) if q.ready is not None else None
    takes_listens = _ready_wants(q.listens) if q.listens is not None else None
    store = call.platform.store
    cursor = cursor_name(call.user, q.agent) if q.agent else None
    saved = await store.get_cursor(cursor) if cursor is not None else None
    start = q.after if q.after is not None else saved
    new_agent = start is None and cursor is not None
    if start is None:
        start = await store.head()

    ws = web.WebSocketResponse(heartbeat=20.0, protocols=(BEARER_PROTOCOL,))
    await ws.prepare(call.request)
    if new_agent and cursor is not None:
        # Saved only once the upgrade succeeded: a refused request writes nothing.
        await store.set_cursor(cursor, start)
    call.request.app[SOCKETS].add(ws)
    token = bearer(call.request) or subprotocol_token(call.request)
    channel = Channel(ws, call.request, token, call.users, call.platform, functools.partial(actor, call.request.app),
                      call.request.app[ANSWERS])
    revoked = _Revoked(ws, call.users, token)

    def visible(event: Event) -> bool:
        if topics and not any(t(event.topic) for t in topics):
            return False
        return bool(event_filter(event)) and visible_to(call.user, event)

    handled = [start if saved is None else min(start, saved)]
    # A worker of this server from before its `ready`: whoever it tells it started finds it listed.
    worker = None if q.agent is None else _listening(call, q, visible, takes_ready or takes_listens, handled,
                                                       channel)
    try:
        # `calls`: this server takes the worker channel's frames on this socket (see channel.py).
        # `listens`: a reconnect may say its job:ready filters again with `listens` (the queues page shows them).
        await ws.send_json({"type": "ready", "position": start, "head": await store.head(), "calls": True,
                            "listens": True})
    except BaseException:
        if worker is not None:
            call.platform.workers.remove(worker)
        raise

    wanted = visible
    groups = call.request.app[AGENTS]
    shared: tuple[AgentGroup, Member] | None = None
    formed = False
    if cursor is not None and q.share:
        group, formed = groups.get(cursor)
        member = group.join(visible, start, start if new_agent else saved)  # a new agent's cursor is its start
        shared = (group, member)
        if worker is not None:
            worker.member, worker.position = member, lambda: member.acked

        def wanted(event: Event) -> bool:
            return group.take(member, event, visible(event))

    async def ack(seq: int) -> None:
        assert cursor is not None
        if shared is None:
            handled[0] = max(handled[0], seq)
            await store.set_cursor(cursor, seq)
            return
        moved = shared[0].ack(shared[1], seq)  # the group's cursor: never past a job another socket holds
        if moved is not None:
            await store.set_cursor(cursor, moved)

    window = _Window(q.window) if q.window is not None and q.batch else None

    async def send() -> None:
        async with call.platform.eventlog.subscribe(start) as events:
            if q.batch:
                await _send_batches(ws, events, wanted, window, revoked)
                return
            async for event in events:
                if wanted(event):
                    if await revoked.refused():
                        return
                    await ws.send_str('{"type":"event","event":' + event.to_json() + "}")

    went_away = True
    try:
        async with task_scope() as tg:
            tg.start_soon(send)
            if q.workers:
                tg.start_soon(_tell_workers, ws, call.platform)
            if takes_ready is not None:
                tg.start_soon(partial(call.platform.api.jobs.announce_waiting, lambda e: visible(e) and takes_ready(e),
                                      after=start))
            elif formed and saved is not None and start > saved:
                tg.start_soon(_announce_ready, call.platform, saved, start, visible)
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    if await revoked.refused(message.data, channel, tg):
                        break
                    await _receive(message.data, ws, None if cursor is None else ack, channel, tg, window)
    except ConnectionResetError:
        pass  # the client went away mid-send; its cursor says where to resume
    except anyio.get_cancelled_exc_class():
        went_away = False  # the server is stopping: the jobs stay with the sockets that come back
        raise
    finally:
        call.request.app[SOCKETS].discard(ws)
        if worker is not None:
            call.platform.workers.remove(worker)
        if shared is not None:
            held = groups.leave(*shared)
            if held and went_away and not groups.closing:
                with anyio.CancelScope(shield=True):
                    for job_id in held:
                        await call.platform.api.jobs.announce(job_id)
    return ws


def _listening(call: Call, q: StreamQuery, visible: Callable[[Event], bool], handles: Callable[[Event], bool] | None,
               handled: list[int], channel: Channel) -> Connection:
    """Register an agent's socket as a worker of this server: the job:ready events it would take."""
    assert q.agent is not None

    def takes(event: Event) -> bool:
        return visible(event) and (handles is None or handles(event))

    return call.platform.workers.add(
        kind="stream", agent=q.agent, user=call.user.name, takes=takes, connected_at=call.platform.clock.now(),
        topics=list(q.topic), filter=None if q.filter is None else parse_json(q.filter),
        ready=None if (handlers := q.ready or q.listens) is None else parse_json(handlers),
        cursor=cursor_name(call.user, q.agent), shared=q.share, address=call.request.remote,
        position=lambda: handled[0], acked=channel.acked)


async def _tell_workers(ws: web.WebSocketResponse, platform: Platform) -> None:
    """Tell the client each time a worker comes or goes (`?workers=true`), so that it asks again who listens."""
    while True:
        await platform.workers.changed()
        await ws.send_str('{"type":"workers","connected":' + str(len(platform.workers)) + "}")


REVOKED_CLOSE = 4401
"""The close code of a socket whose token stopped working (revoked or rotated): 4000-4999 are the application's."""


class _Revoked:
    """Checks a socket's token before each frame it sends or receives, so that a token revoked or rotated while
    the socket is open is refused from its next frame: its calls are answered 401 `unauthorized` (as REST
    answers them), the socket gets an `error` message with that code and is closed, and no event goes out."""

    def __init__(self, ws: web.WebSocketResponse, users: Users, token: str | None) -> None:
        self._ws, self._users = ws, users
        self._digest = hash_token(token) if token else ""  # the socket was opened with it: "" never happens
        self.closed = False

    async def refused(self, frame: str | None = None, channel: Channel | None = None,
                      tg: TaskGroup | None = None) -> bool:
        if self.closed:
            return True
        try:
            # Cached: a clock read and a dict lookup (0.8 µs a frame here, 1.9 µs with the hash), bar one store
            # read per AUTH_CACHE_SECONDS.
            await self._users.by_digest(self._digest)
            return False
        except Unauthorized as exc:
            self.closed = True
            error = exc
        if frame is not None and channel is not None and tg is not None:
            try:
                data = parse_json(frame)
                if isinstance(data, dict) and data.get("type") == "calls":
                    await channel.receive(data, tg)  # refuses each call as REST would: 401 with its id
            except (ValueError, Invalid):
                pass
        try:
            await self._ws.send_json({"type": "error", "error": error.to_dict()["error"]})
            await self._ws.close(code=REVOKED_CLOSE, message=b"the bearer token is no longer valid")
        except ConnectionResetError:
            pass
        return True


async def _announce_ready(platform: Platform, after: int, upto: int, wanted: Callable[[Event], bool]) -> None:
    """Announce again the jobs still ready whose job:ready lies between the agent's cursor and a socket's start.

    The socket resumes past them, and the socket they went to may be gone with the server that
    knew about it (a restart); a job announced to a worker that still has it costs one refused ack.
    """
    for job_id in await ready_between(platform.store, after, upto, wanted):
        await platform.api.jobs.announce(job_id)


class _Window:
    """How many more events the client will take: a socket that also carries the answers to a worker's
    calls must never stop being read, so its client bounds what it is sent ahead instead (`?window=N`)."""

    def __init__(self, size: int) -> None:
        self.credit = size
        self._more = anyio.Event()

    def give(self, events: int) -> None:
        self.credit += events
        self._more.set()

    async def take(self, wanted: int) -> int:
        """Up to `wanted` events may go now (at least one): waits while the client has taken none back."""
        while self.credit <= 0:
            more = self._more = anyio.Event()
            await more.wait()
        taken = min(wanted, self.credit)
        self.credit -= taken
        return taken


async def _send_batches(ws: web.WebSocketResponse, events: AsyncIterable[Event],
                        wanted: Callable[[Event], bool], window: _Window | None = None,
                        revoked: _Revoked | None = None) -> None:
    """Send `events` as `{"type": "events"}` frames, each holding every event ready when it is written.

    One task reads the subscription into a bounded buffer as fast as it yields (a committed batch
    comes out without a pause); this one writes whatever the buffer holds as one frame, in order.
    The buffer's bound makes a slow client hold the reader back (the subscription then catches up
    from the store), and `_BATCH_BYTES` keeps each frame far below a client's message size limit.
    """
    send, receive = anyio.create_memory_object_stream[str](_BATCH_EVENTS)

    async def read() -> None:
        async with send:
            async for event in events:
                if wanted(event):
                    data = event.to_json()
                    try:
                        send.send_nowait(data)  # no checkpoint per event: the batch collects until the reader waits
                    except anyio.WouldBlock:
                        await send.send(data)

    async with task_scope() as tg, receive:
        tg.start_soon(read)
        waiting: deque[str] = deque()  # read, not sent yet, in order
        while True:
            if not waiting:
                try:
                    waiting.append(await receive.receive())
                except anyio.EndOfStream:
                    return
            while len(waiting) < _BATCH_EVENTS:
                try:
                    waiting.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            allowed = len(waiting) if window is None else await window.take(len(waiting))
            batch = [waiting.popleft()]
            size = len(batch[0])
            while waiting and len(batch) < allowed and size + len(waiting[0]) <= _BATCH_BYTES:
                size += len(waiting[0])
                batch.append(waiting.popleft())
            if window is not None and len(batch) < allowed:
                window.give(allowed - len(batch))  # kept for the next frame
            if revoked is not None and await revoked.refused():
                return
            await ws.send_str('{"type":"events","events":[' + ",".join(batch) + "]}")


async def _receive(text: str, ws: web.WebSocketResponse, ack: Callable[[int], Awaitable[None]] | None,
                   channel: Channel, tg: TaskGroup, window: _Window | None) -> None:
    message = 'Expected {"type": "ack", "seq": N}, {"type": "window", "events": N} or {"type": "calls", ...}.'
    try:
        data = parse_json(text)
        if data.get("type") == "window" and window is not None:
            events = data["events"]
            if type(events) is int and 1 <= events <= 100_000:
                window.give(events)
                return
            message = "A window message gives back 1 to 100000 events: {\"type\": \"window\", \"events\": N}."
        elif data.get("type") == "calls":
            try:
                await channel.receive(data, tg)
            except Invalid as exc:
                await ws.send_json({"type": "error", "error": exc.to_dict()["error"]})
            return
        elif data.get("type") == "ack" and ack is None:
            message = "An ack moves an agent's cursor: connect with ?agent=NAME to send acks."
        elif data.get("type") == "ack" and ack is not None:
            seq = int(data["seq"])
            if 0 <= seq <= MAX_INT64:  # past 64 bits the store cannot hold it
                await ack(seq)
                return
            message = f"An ack's seq is an event's position: an integer from 0 to {MAX_INT64}."
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    error = {"code": "invalid", "message": message}
    await ws.send_json({"type": "error", "error": error})


STREAM_ROUTE = Route("GET", "/events/stream", events_stream,
                     "The event log as a websocket: backlog from `after` (or the agent's cursor), then live events.",
                     "events", query=StreamQuery, status=101)
