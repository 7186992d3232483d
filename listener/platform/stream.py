"""The live event stream: a websocket that sends the log in order from a position, then live events.

Client → server messages: `{"type": "ack", "seq": N}` — every event up to N was
handled (moves the agent's cursor). Server → client: `{"type": "ready", "position",
"head"}` once, then `{"type": "event", "event": {...}}` in `seq` order.

A named agent with no `after` resumes from its server-side cursor (a new agent
starts at the newest event), so a listener that disconnects or crashes resumes
after the last event it finished. A slow client gets the backlog from the store
(see `Subscription`), never a dropped connection.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import Field

from listener.errors import Invalid
from listener.models import MAX_INT64, Model
from listener.platform.routes import Call, Route, cursor_name, parse_json, visible_to
from listener.tasks import task_scope
from listener.topics import compile_filter, compile_topic

__all__ = ["BEARER_PROTOCOL", "STREAM_ROUTE", "StreamQuery", "subprotocol_token"]

log = logging.getLogger("listener.stream")

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


def _filter(raw: str | None) -> Any:
    if raw is None:
        return compile_filter(None)
    try:
        spec = parse_json(raw)
    except ValueError as exc:
        raise Invalid(f"filter: not valid JSON: {exc}.",
                      details=[{"field": "filter", "message": "malformed"}]) from None
    return compile_filter(spec)


async def events_stream(call: Call) -> web.WebSocketResponse:
    """The event log as a websocket: backlog from `after` (or the agent's cursor), then live events."""
    from listener.platform.server import SOCKETS

    q: StreamQuery = call.query
    topics = [compile_topic(t) for t in q.topic]
    event_filter = _filter(q.filter)
    store = call.platform.store
    cursor = cursor_name(call.user, q.agent) if q.agent else None
    start = q.after
    if start is None and cursor is not None:
        start = await store.get_cursor(cursor)
    new_agent = start is None and cursor is not None
    if start is None:
        start = await store.head()

    ws = web.WebSocketResponse(heartbeat=20.0, protocols=(BEARER_PROTOCOL,))
    await ws.prepare(call.request)
    if new_agent and cursor is not None:
        # Saved only once the upgrade succeeded: a refused request writes nothing.
        await store.set_cursor(cursor, start)
    call.request.app[SOCKETS].add(ws)
    await ws.send_json({"type": "ready", "position": start, "head": await store.head()})

    async def send() -> None:
        async with call.platform.eventlog.subscribe(start) as events:
            async for event in events:
                if topics and not any(t(event.topic) for t in topics):
                    continue
                if not event_filter(event) or not visible_to(call.user, event):
                    continue
                await ws.send_str('{"type":"event","event":' + event.model_dump_json() + "}")

    try:
        async with task_scope() as tg:
            tg.start_soon(send)
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await _receive(message.data, ws, store, cursor)
    except ConnectionResetError:
        pass  # the client went away mid-send; its cursor says where to resume
    finally:
        call.request.app[SOCKETS].discard(ws)
    return ws


async def _receive(text: str, ws: web.WebSocketResponse, store: Any, cursor: str | None) -> None:
    message = 'Expected {"type": "ack", "seq": N}.'
    try:
        data = parse_json(text)
        if data.get("type") == "ack" and cursor is None:
            message = "An ack moves an agent's cursor: connect with ?agent=NAME to send acks."
        elif data.get("type") == "ack":
            seq = int(data["seq"])
            if 0 <= seq <= MAX_INT64:  # past 64 bits the store cannot hold it
                await store.set_cursor(cursor, seq)
                return
            message = f"An ack's seq is an event's position: an integer from 0 to {MAX_INT64}."
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    error = {"code": "invalid", "message": message}
    await ws.send_json({"type": "error", "error": error})


STREAM_ROUTE = Route("GET", "/events/stream", events_stream,
                     "The event log as a websocket: backlog from `after` (or the agent's cursor), then live events.",
                     "events", query=StreamQuery, status=101)
