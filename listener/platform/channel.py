"""The worker channel: a client's job calls over the websocket it holds for its events, many per frame.

A worker's calls on the jobs in its hands (ack, update, heartbeat, checkpoint, complete, fail, log_error,
write_data), and any streaming client's creates, would each be an HTTP request; over the stream's socket
they cost a fraction of one, and the calls that arrive together reach the store together, where its group
commit writes them in one transaction.

Client → server, on a stream whose `ready` message said `"calls": true`:

    {"type": "calls", "calls": [{"id": "s1.7", "method": "POST", "path": "/jobs/jb_1/ack", "body": {...}}, ...]}

Server → client, as each call is done (the answers that are ready go out together):

    {"type": "answers", "answers": [
        {"id": "s1.7", "status": 200, "body": {...}},
        {"id": "s1.8", "status": 409, "error": {"code": ..., "message": ..., "details": ...}}]}

`method` and `path` (under /api/v1) name the REST route, and the call is served by that route's own
handler as the socket's user: the same roles, validation, attempt fencing, status and error body as the
request would get (the token is checked again for every frame, so a revoked one is refused here too).
Only the routes in CHANNEL_ROUTES may be called this way; any other is answered 404 `not_found`. A call
that is not an object with a string or integer `id` (of at most 100 characters), a `method` and a `path`,
and a `body` object where the route takes one, is answered 422 `invalid` naming the field, when it has an
id to answer to; a frame that is not JSON, or has no `calls` list, is answered with an `error` message
(`{"type": "error", "error": {...}}`) and nothing else happens. Neither affects any other socket.

Ids are the client's and are kept per user: a call sent again with the id of one this server has
answered (or is still serving) gets that answer, and is not run twice, so a worker whose socket dropped
before the answer came sends its unanswered calls again after it reconnects. A call that reached
another server (a failover) is fenced as over REST: a second ack is a Conflict, a call of an attempt that is over too;
a create is made with the Idempotency-Key `call:<id>`, so one sent again to another server (or to this one after a
restart) returns the job the first made.
Calls run concurrently, so calls about one job must not be sent together unless their order does not
matter (a worker awaits each answer, as over REST). A socket's calls run beside its events, and a slow
socket holds back only itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio
import anyio.lowlevel
from aiohttp import web
from anyio.abc import TaskGroup
from pydantic_core import to_json

from listener.channel import CHANNEL_ROUTES, path_pattern
from listener.errors import Invalid, ListenerError, NotFound
from listener.models import refuse_nul
from listener.platform.routes import ROUTES, Call, Reply, Route, forbid, parse_json, parse_raw_body

if TYPE_CHECKING:
    from listener.platform import Platform, PlatformApi
    from listener.platform.auth import User, Users

__all__ = ["CHANNEL_ROUTES", "Answers", "Channel"]

log = logging.getLogger("listener.channel")

MAX_CALLS = 1000
"""Calls in one frame at most."""
MAX_IN_FLIGHT = 256
"""Calls of one socket served at once; the socket's next frames wait (its events do not)."""
_REMEMBERED = 10_000
"""Answers kept per server for calls sent again (a reconnecting worker's unanswered calls)."""
_REMEMBERED_BYTES = 16 * 1024 * 1024
"""Their size at most: one job's answer can be as large as the body limit."""


_TABLE: list[tuple[str, re.Pattern[str], Route]] = [
    (route.method, path_pattern(route.path), route) for route in ROUTES if (route.method, route.path) in CHANNEL_ROUTES]
assert len(_TABLE) == len(CHANNEL_ROUTES), "every channel route is a REST route"


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The channel route `method path` names and its path parameters; NotFound as REST says it."""
    for route_method, pattern, route in _TABLE:
        if route_method == method and (found := pattern.match(path)):
            return route, {k: unquote(v) for k, v in found.groupdict().items()}
    raise NotFound(f"No such endpoint over the worker channel: {method} {path}; a channel call is one of "
                   f"{', '.join(f'{m} {p}' for m, p in CHANNEL_ROUTES)}.")


class Answers:
    """The answers of recent calls by user and id, and the calls still being served, so none runs twice."""

    def __init__(self, size: int = _REMEMBERED, max_bytes: int = _REMEMBERED_BYTES) -> None:
        self.size, self.max_bytes = size, max_bytes
        self.bytes = 0
        self._done: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._serving: dict[tuple[str, str], anyio.Event] = {}

    async def once(self, key: tuple[str, str], serve: Callable[[], Awaitable[str]]) -> str:
        while key in self._serving:  # sent again while the first is still being served: its answer
            await self._serving[key].wait()
        if (answer := self._done.get(key)) is not None:
            return answer
        self._serving[key] = done = anyio.Event()
        try:
            answer = await serve()
            self._done[key] = answer
            self.bytes += len(answer)
            while self._done and (len(self._done) > self.size or self.bytes > self.max_bytes):
                self.bytes -= len(self._done.popitem(last=False)[1])
            return answer
        finally:
            del self._serving[key]
            done.set()


def _answer(call_id: str | int, status: int, body: str | None = None, error: ListenerError | None = None) -> str:
    head = '{"id":' + json.dumps(call_id) + ',"status":' + str(status)
    if error is not None:
        return head + ',"error":' + json.dumps(error.to_dict()["error"]) + "}"
    return head + (',"body":' + body if body is not None else "") + "}"


class Channel:
    """One socket's end of the channel: serves the frames of calls it receives, sends their answers."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, token: str | None, users: Users,
                 platform: Platform, actor: Callable[[str], PlatformApi], answers: Answers) -> None:
        self._ws, self._request, self._token, self._users = ws, request, token, users
        self._platform, self._actor, self._answers = platform, actor, answers
        self._slots = anyio.Semaphore(MAX_IN_FLIGHT)
        self._outbox: list[str] = []
        self._flushing = False
        self.acked: set[str] = set()
        """The jobs this socket acked and has not completed or failed over it: the executing jobs in its hands."""

    async def receive(self, data: Any, tg: TaskGroup) -> None:
        """Start serving a `calls` frame (already parsed); answers go out as the calls end."""
        calls = data.get("calls")
        if not isinstance(calls, list) or not 1 <= len(calls) <= MAX_CALLS:
            raise Invalid(f'A calls frame is {{"type": "calls", "calls": [...]}} with 1 to {MAX_CALLS} calls.',
                          details=[{"field": "calls", "message": "expected a list"}])
        try:
            user = await self._users.authenticate(self._token)
        except ListenerError as exc:  # revoked since the socket opened: every call is refused, as over REST
            await self._send([_answer(call_id, exc.status, error=exc) for c in calls
                              if (call_id := _id(c)) is not None])
            return
        for index, spec in enumerate(calls):
            try:
                self._slots.acquire_nowait()  # without anyio's checkpoint (two cancel scopes) while one is free
            except anyio.WouldBlock:
                await self._slots.acquire()
            tg.start_soon(self._serve, index, spec, user)

    async def _serve(self, index: int, spec: Any, user: User) -> None:
        try:
            call_id = _id(spec)
            if call_id is None:
                await self._ws.send_json({"type": "error", "error": Invalid(
                    f"calls.{index}.id: a call needs an id, a string or an integer of at most 100 characters.",
                    details=[{"field": f"calls.{index}.id", "message": "missing or not a string or integer"}],
                ).to_dict()["error"]})
                return
            # Shielded: a call the store has begun is finished and remembered even if the socket goes away.
            with anyio.CancelScope(shield=True):
                answer = await self._answers.once((user.name, str(call_id)), lambda: self._run(call_id, spec, user))
            await self._send([answer])
        finally:
            self._slots.release()

    async def _run(self, call_id: str | int, spec: dict[str, Any], user: User) -> str:
        try:
            method, path = spec.get("method"), spec.get("path")
            if not isinstance(method, str) or not isinstance(path, str):
                raise Invalid("A call needs its `method` and `path` (under /api/v1) as strings.",
                              details=[{"field": "method" if not isinstance(method, str) else "path",
                                        "message": "expected a string"}])
            route, params = match(method, path)
            forbid(user, route)
            refuse_nul(params)
            call = Call(self._request, user, self._platform, self._actor(user.name), self._users, params=params,
                        idempotency_key=f"call:{call_id}")
            if route.body is not None:
                body = spec.get("body")
                call.body = parse_raw_body(b"" if body is None else to_json(body), route.body)
            result = await route.handler(call)
            assert not isinstance(result, web.StreamResponse), "a channel route answers with a model"
            self._holds(route, params)
            reply = result if isinstance(result, Reply) else Reply(result, status=route.status)
            status = reply.status if reply.body is not None or reply.status != 200 else 204
            return _answer(call_id, status, None if reply.body is None else reply.body.model_dump_json())
        except ListenerError as exc:
            return _answer(call_id, exc.status, error=exc)
        except Exception:
            log.exception("Unhandled error in a worker channel call %r", spec)
            return _answer(call_id, 500, error=ListenerError("Something went wrong on the server; it has been logged."))

    def _holds(self, route: Route, params: dict[str, str]) -> None:
        """Keep `acked` (the queues page's "jobs in its hands") as a successful call changes it."""
        if route.operation_id == "ack_job":
            self.acked.add(params["jobId"])
        elif route.operation_id in ("complete_job", "fail_job"):
            self.acked.discard(params["jobId"])

    async def _send(self, answers: list[str]) -> None:
        """Send answers; whoever finds no send under way sends every answer ready meanwhile, one frame at a time."""
        self._outbox.extend(answers)
        if self._flushing:
            return
        self._flushing = True
        try:
            # One turn of the loop first: the other calls of the same commit end in it, and their answers
            # share this frame (a frame is a write to the socket, a system call each).
            await anyio.lowlevel.checkpoint()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                await self._ws.send_str('{"type":"answers","answers":[' + ",".join(batch) + "]}")
        except ConnectionResetError:
            self._outbox.clear()  # the socket went away: the worker sends its unanswered calls again
        finally:
            self._flushing = False


def _id(spec: Any) -> str | int | None:
    if not isinstance(spec, dict):
        return None
    call_id = spec.get("id")
    if isinstance(call_id, bool) or not isinstance(call_id, str | int) or len(str(call_id)) > 100 or call_id == "":
        return None
    return call_id


def parse_frame(text: str) -> Any:
    """A client frame as JSON; Invalid when it is not."""
    try:
        return parse_json(text)
    except ValueError as exc:
        raise Invalid(f"The frame is not valid JSON: {exc}.", details=[{"field": "(frame)", "message": "malformed"}]
                      ) from None
