"""How Listener logs: stdlib `logging`, one line per record, as text or JSON, with the job on every line.

While the runner dispatches an event it sets the log context (`log_context`), so every line
logged by a handler, by the code it calls and by the framework around it carries the job:

```python
from listener.logs import configure
configure("json")      # what `listener --log-format json ...` does
```

```json
{"time": "2026-01-01T12:00:00.123Z", "level": "ERROR", "logger": "listener.job_handler",
 "message": "Job jb_1 (workbook:export) failed on attempt 2", "jobId": "jb_1", "attempt": 2,
 "job": "workbook:export", "agent": "exporter", "topic": "job:ready", "eventId": "ev_000000000042",
 "exc": "Traceback ..."}
```

The context lives in a `contextvars.ContextVar`: tasks started inside a handler and sync handlers
run in a worker thread (anyio's `to_thread.run_sync` copies the context) see it too. Setting it
costs a dict and a `ContextVar.set`; the JSON work happens only when a line is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TextIO

__all__ = [
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "LogContext",
    "LogContextFilter",
    "LogFormat",
    "TextFormatter",
    "configure",
    "current_context",
    "log_context",
]

LogFormat = Literal["text", "json"]

CONTEXT_FIELDS = ("jobId", "attempt", "job", "agent", "topic", "eventId")
"""The record attributes (and JSON keys) the log context fills in, in the order lines show them."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# None, not an empty dict, as the default: a ContextVar's default is shared by every context.
_context: ContextVar[dict[str, Any] | None] = ContextVar("listener_log_context", default=None)

# What every LogRecord has of its own; anything else on a record came from `extra=` (or a filter).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",  # set by Formatter.format; taskName by Python 3.12+
}


def log_context(*, job_id: str | None = None, attempt: int | None = None, job: str | None = None,
                agent: str | None = None, topic: str | None = None, event_id: str | None = None) -> LogContext:
    """Attach job fields to every line logged inside a `with` block (in this task, its child tasks and threads).

    Fields left out, or given as None, keep the value of an enclosing block; the previous context
    comes back on exit, even if the block raises.

    ```python
    with log_context(job_id=job.id, attempt=job.attempt, job=job.job):
        log.info("Starting")      # ... "jobId": "jb_1", "attempt": 1, "job": "workbook:export" ...
    ```

    Args:
        job_id: the job's id (`jobId` in JSON, `job=` in text).
        attempt: the job's attempt being handled.
        job: the job's `domain:operation`.
        agent: the name of the agent running the listener.
        topic: the event's topic.
        event_id: the event's id.
    """
    given = (("jobId", job_id), ("attempt", attempt), ("job", job), ("agent", agent), ("topic", topic),
             ("eventId", event_id))
    return LogContext({name: value for name, value in given if value is not None})


class LogContext:
    """A block of code whose log lines carry some job fields; made by `log_context`, used once."""

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields
        self._token: Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        if self._token is not None:
            raise RuntimeError("A log_context is entered once; make a new one for another block.")
        outer = _context.get()
        self._token = _context.set({**outer, **self._fields} if outer else self._fields)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._token is not None, "__exit__ without __enter__"
        _context.reset(self._token)


def current_context() -> Mapping[str, Any]:
    """The job fields in force here (JSON names: `jobId`, `attempt`, ...); empty outside a job."""
    return _context.get() or {}


class LogContextFilter(logging.Filter):
    """Copies the log context onto each record (`record.jobId`, `record.attempt`, ...; None when unknown).

    Add it to a handler of your own to use the fields in a format string, e.g.
    `"%(levelname)s %(jobId)s %(message)s"`. A field the caller passed with `extra=` is kept.
    It must run where the line is logged (a handler's filter does), not in another thread.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get() or {}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, fields.get(name))
        return True


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    if hasattr(record, CONTEXT_FIELDS[0]):
        return {name: value for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None}
    # No LogContextFilter ran (the formatter was put on a handler without one): the line is being
    # formatted where it was logged, unless the handler hands records to another thread.
    return current_context()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (ISO 8601, UTC), `level`, `logger`, `message`, the job fields
    that are known, the caller's `extra=` keys, and `exc` (the formatted traceback) when there is one.

    An `extra=` value JSON cannot encode is written as its `str()` (or `repr()`); an `extra=` key named
    like one of the keys above does not replace it.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_fields(record))
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in CONTEXT_FIELDS and key not in line:
                line[key] = value
        if record.exc_info and not record.exc_text:
            # Cached on the record, as the stdlib's formatter does, for the other handlers of this record.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(line, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            # An extra that `default=str` cannot save (a dict with tuple keys, a value that contains itself):
            # written as its repr rather than losing the whole line to a "Logging error".
            safe = {k: v if isinstance(v, str | int | float | bool | None) else repr(v) for k, v in line.items()}
            return json.dumps(safe, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, then `job=<id> attempt=<n>` when the line was logged during a job."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _fields(record)
        job_id = fields.get("jobId")
        if job_id is None:
            return text
        attempt = fields.get("attempt")
        # On the message's own line, before any traceback, so `grep job=jb_1` finds every line of the job.
        return f"{text} job={job_id}" if attempt is None else f"{text} job={job_id} attempt={attempt}"


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `configure` installs, told apart from handlers others installed."""


def configure(format: LogFormat = "text", level: int | str = logging.INFO, *,
              stream: TextIO | None = None) -> logging.Handler:
    """Log to `stream` (default stderr) from the root logger, as text or one JSON object per line.

    Calling it again replaces the handler it installed before; handlers installed by others stay.

    Args:
        format: "text" (`time LEVEL logger: message job=<id> attempt=<n>`) or "json" (see `JsonFormatter`).
        level: the root logger's level.
        stream: where lines go.

    Returns:
        the handler installed, to remove it with `logging.getLogger().removeHandler(handler)`.

    Raises:
        ValueError: for a format other than "text" or "json".
    """
    if format not in ("text", "json"):
        raise ValueError(f"The log format is 'text' or 'json', not {format!r}.")
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
