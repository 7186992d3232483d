"""The aiohttp server: the REST API, the event stream, the OpenAPI document and the web page over one platform.

```python
async with Platform.open() as platform, anyio.create_task_group() as tg:
    port = await tg.start(serve, platform)   # readiness: the bound port
```
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import anyio
from aiohttp import WSCloseCode, web
from anyio.abc import TaskStatus
from multidict import MultiDict, MultiMapping

import listener.platform.schedule_routes  # noqa: F401  # its routes join the one table before the app is built
from listener.errors import Invalid, ListenerError, NotFound, TooLarge
from listener.models import refuse_nul
from listener.platform import (
    Platform,
    PlatformApi,
    webhook_routes,  # noqa: F401  (adds its routes to the table)
)
from listener.platform.auth import LINK_PARAMS, User, Users
from listener.platform.channel import Answers
from listener.platform.metrics import METRICS_ROUTE
from listener.platform.openapi import openapi
from listener.platform.queue_routes import QueueList  # noqa: F401  (importing it adds /queues and /workers to ROUTES)
from listener.platform.routes import ROUTES, Call, Reply, Route, forbid, parse_body, parse_query
from listener.platform.sharing import AgentGroups
from listener.platform.stream import STREAM_ROUTE, subprotocol_token
from listener.platform.web import add_routes as add_web_routes
from listener.platform.web.docs import add_routes as add_docs_routes

__all__ = ["DEFAULT_MAX_BODY", "create_app", "serve"]

log = logging.getLogger("listener.server")

DEFAULT_MAX_BODY = 1024 * 1024
API = "/api/v1"

PLATFORM: web.AppKey[Platform] = web.AppKey("platform", Platform)
USERS: web.AppKey[Users] = web.AppKey("users", Users)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
AGENTS: web.AppKey[AgentGroups] = web.AppKey("agents", AgentGroups)
ANSWERS: web.AppKey[Answers] = web.AppKey("answers", Answers)


class _InFlight:
    """The requests being handled, so that shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: anyio.Event | None = None

    def done(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self) -> None:
        while self.count:
            self._idle = anyio.Event()
            await self._idle.wait()


IN_FLIGHT: web.AppKey[_InFlight] = web.AppKey("in_flight", _InFlight)
ACTORS: web.AppKey[dict[str | None, PlatformApi]] = web.AppKey("actors")
_ACTORS_CACHED = 1024

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "bad_request"}


def error_response(exc: ListenerError) -> web.Response:
    return web.json_response(exc.to_dict(), status=exc.status)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    in_flight = request.app[IN_FLIGHT]
    in_flight.count += 1
    try:
        return await _answer(request, handler)
    finally:
        in_flight.done()


async def _answer(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ListenerError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size
        return error_response(TooLarge(f"The request body is larger than the limit of {limit} bytes.",
                                       details={"limit": limit}))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(NotFound(f"No such endpoint: {request.method} {request.path}."))
        message = exc.reason
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = f"{request.method} is not allowed on {request.path}; use {allowed}."
        body = {"error": {"code": _HTTP_CODES.get(exc.status, "http_error"), "message": message, "details": None}}
        return web.json_response(body, status=exc.status, headers={k: v for k, v in exc.headers.items()
                                                                       if k.lower() == "allow"})
    except Exception:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(ListenerError("Something went wrong on the server; it has been logged."))


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def actor(app: web.Application, name: str | None) -> PlatformApi:
    """The platform's Api acting as `name`, made once per user rather than once per request (it holds no state)."""
    actors = app[ACTORS]
    api = actors.get(name)
    if api is None:
        if len(actors) >= _ACTORS_CACHED:
            actors.clear()
        api = actors[name] = app[PLATFORM].api.as_actor(name)
    return api


def _view(route: Route) -> Any:
    async def view(request: web.Request) -> web.StreamResponse:
        platform, users = request.app[PLATFORM], request.app[USERS]
        query: MultiMapping[str] = request.query
        if route.downloadable and bearer(request) is None and "signature" in query:
            # A signed link (POST /links) stands for its user's token, for this one download.
            user: User | None = await users.from_link(request.path, query)
            query = MultiDict((k, v) for k, v in query.items() if k not in LINK_PARAMS)
        else:
            token = bearer(request)
            if token is None and route is STREAM_ROUTE:
                token = subprotocol_token(request)  # a browser's WebSocket cannot send the header
            user = await users.authenticate(token) if not route.public else None
        refuse_nul(dict(request.match_info))
        if user is not None:
            forbid(user, route)
        call = Call(request, user, platform, actor(request.app, user.name if user else None),  # type: ignore[arg-type]
                    users)
        if route.query is not None:
            call.query = parse_query(route.query, query, query.getall)
        elif query:
            raise Invalid(f"{route.method} {route.path} takes no query parameters; got {', '.join(query)}.",
                          details=[{"field": k, "message": "unknown query parameter"} for k in query])
        if route.body is not None:
            call.body = await parse_body(request, route.body)
        result = await route.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        reply = result if isinstance(result, Reply) else Reply(result, status=route.status)
        if reply.body is None:
            return web.Response(status=204 if reply.status == 200 else reply.status, headers=reply.headers)
        return web.Response(body=reply.body.model_dump_json().encode(), status=reply.status, headers=reply.headers,
                            content_type="application/json")

    view.__name__ = route.operation_id
    return view


async def openapi_document(call: Call) -> web.Response:
    """The OpenAPI 3.1 document of this API, generated from the route table and the models."""
    return web.Response(body=_spec(), content_type="application/json")


# Like every endpoint but health, the document needs a token; it lists itself with the rest.
SPEC_ROUTE = Route("GET", "/openapi.json", openapi_document,
                   "The OpenAPI 3.1 document of this API, generated from the route table and the models.",
                   "system", response=dict)


@functools.cache
def _spec() -> bytes:
    return json.dumps(openapi([*ROUTES, STREAM_ROUTE, SPEC_ROUTE, METRICS_ROUTE], prefix=API)).encode()


async def _close_sockets(app: web.Application) -> None:
    # Streams never end by themselves; tell each client we are going away so it reconnects elsewhere.
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    app[AGENTS].closing = True  # the jobs the sockets hold stay theirs: their workers come back
    for ws in [*sockets]:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def create_app(platform: Platform, *, users: Users | None = None, max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    """The aiohttp application for `platform`; `max_body` bytes is the largest request body accepted (413 past it)."""
    app = web.Application(middlewares=[_errors], client_max_size=max_body)
    app[PLATFORM] = platform
    app[USERS] = users or Users(platform.store, platform.clock)
    sockets: set[web.WebSocketResponse] = set()
    app[SOCKETS] = sockets
    app[AGENTS] = AgentGroups()
    app[ANSWERS] = Answers()
    app[IN_FLIGHT] = _InFlight()
    app[ACTORS] = {}
    for route in [*ROUTES, STREAM_ROUTE, SPEC_ROUTE, METRICS_ROUTE]:
        app.router.add_route(route.method, (API if route.prefixed else "") + route.path, _view(route),
                             name=route.operation_id)
    add_web_routes(app)  # the web page at / and /static/
    add_docs_routes(app, _spec)  # the API docs at /api/docs
    app.on_shutdown.append(_close_sockets)
    return app


async def serve(
    platform: Platform,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    users: Users | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    shutdown_timeout: float = 30.0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the platform until cancelled, then shut down gracefully.

    Reports the bound port through `task_status` (pass port 0 for any free port).
    On cancellation, stops accepting connections, closes event streams with
    "going away", lets in-flight requests finish (up to `shutdown_timeout`),
    even one whose body is still arriving.
    """
    app = create_app(platform, users=users, max_body=max_body)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        log.info("Listening on http://%s:%d", host, bound)
        task_status.started(bound)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            # aiohttp's cleanup ignores the data still arriving on every connection, so a request
            # whose body is on its way would hang until the timeout: drain the requests first.
            for listening in list(runner.sites):
                await listening.stop()
            with anyio.move_on_after(shutdown_timeout):
                await _close_sockets(app)
                await app[IN_FLIGHT].drained()
            await runner.cleanup()
