"""The worker channel's client end: job calls that go over the event stream's websocket instead of HTTP.

`run_listener` hands its Client the stream it holds; from then on the Client sends the calls in
CHANNEL_ROUTES over it (the frames are in listener/platform/channel.py) and every other call over
HTTP, so a handler cannot tell which way a call went: the answer, or the error, is the same.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import anyio
from pydantic_core import to_json

__all__ = ["CHANNEL_ROUTES", "Calls", "takes"]

CHANNEL_ROUTES = [
    ("POST", "/jobs"),
    ("POST", "/jobs/{jobId}/ack"),
    ("PATCH", "/jobs/{jobId}"),
    ("POST", "/jobs/{jobId}/heartbeat"),
    ("POST", "/jobs/{jobId}/checkpoint"),
    ("POST", "/jobs/{jobId}/complete"),
    ("POST", "/jobs/{jobId}/fail"),
    ("POST", "/jobs/{jobId}/errors"),
    ("POST", "/jobs/{jobId}/data"),
]
"""The REST routes a client may call over its stream: creating jobs, and the moves of the jobs it runs."""


def path_pattern(path: str) -> re.Pattern[str]:
    """A route path such as `/jobs/{jobId}/ack` as a regular expression whose groups are its parameters."""
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return re.compile(f"^{regex}$")


_PATTERNS = [(method, path_pattern(path)) for method, path in CHANNEL_ROUTES]


def takes(method: str, path: str) -> bool:
    """Whether `method path` (under /api/v1) is a call the worker channel carries."""
    return any(m == method and p.match(path) for m, p in _PATTERNS)


class _Pending:
    __slots__ = ("answer", "done", "frame", "status")

    def __init__(self, frame: str) -> None:
        self.frame = frame
        self.done = anyio.Event()
        self.status = 0
        self.answer: Any = None


class Calls:
    """One stream's calls waiting for their answers, by id; ids are unique to this stream's session."""

    def __init__(self) -> None:
        self._session = secrets.token_hex(6)
        self._count = 0
        self._pending: dict[str, _Pending] = {}

    def new(self, method: str, path: str, body: Any) -> tuple[str, _Pending]:
        self._count += 1
        call_id = f"{self._session}.{self._count}"
        frame = ('{"id":"' + call_id + '","method":"' + method + '","path":' + to_json(path).decode()
                 + (',"body":' + to_json(body).decode() if body is not None else "") + "}")
        pending = self._pending[call_id] = _Pending(frame)
        return call_id, pending

    def forget(self, call_id: str) -> None:
        self._pending.pop(call_id, None)

    def answered(self, answer: Mapping[str, Any]) -> None:
        pending = self._pending.pop(str(answer.get("id")), None)
        if pending is None:
            return  # answered already (a call sent twice), or given up on
        pending.status = int(answer.get("status", 0))
        pending.answer = answer.get("error") if pending.status >= 400 else answer.get("body")
        pending.done.set()

    def abandon(self) -> None:
        """The stream is closed: every call waiting is told so (status 0) rather than left to its timeout."""
        for pending in self._pending.values():
            pending.done.set()
        self._pending.clear()

    def unanswered(self) -> list[str]:
        """The frames of every call not answered yet, in the order they were made (to send again)."""
        return [p.frame for p in self._pending.values()]

    def __len__(self) -> int:
        return len(self._pending)
