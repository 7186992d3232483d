"""One exception hierarchy for Listener.

```
ListenerError                      500 internal
├── NotFound (LookupError)         404 not_found
├── Conflict                       409 conflict
├── Invalid (ValueError)           422 invalid
├── Unauthorized                   401 unauthorized
├── Forbidden                      403 forbidden
├── Gone                           410 gone
├── TooLarge                       413 too_large
├── RateLimited                    429 rate_limited
└── JobFailed                      (raised by handlers: fail the job with this outcome; retried if retryable)
    └── NonRetryable               (raised by handlers: fail the job at once, never retry)
```

Each class carries an HTTP ``status`` and a stable ``code``; its docstring is the
default message. ``details`` holds structured context (the field that was wrong,
the job and move that conflicted) and is sent as-is in the HTTP error body.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "JobFailed",
    "ListenerError",
    "NonRetryable",
    "NotFound",
    "RateLimited",
    "TooLarge",
    "Unauthorized",
]


class ListenerError(Exception):
    """Something went wrong inside Listener."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The body of the HTTP error response: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class NotFound(ListenerError, LookupError):
    """The requested object does not exist."""

    status = 404
    code = "not_found"


class Conflict(ListenerError):
    """The move is not allowed in the object's current state."""

    status = 409
    code = "conflict"


class Invalid(ListenerError, ValueError):
    """The input is not valid."""

    status = 422
    code = "invalid"


class Unauthorized(ListenerError):
    """A valid bearer token is required."""

    status = 401
    code = "unauthorized"


class Forbidden(ListenerError):
    """This token may not do that."""

    status = 403
    code = "forbidden"


class Gone(ListenerError):
    """It was here and has expired (a job's data past its time to live)."""

    status = 410
    code = "gone"


class TooLarge(ListenerError):
    """The request is larger than the configured limit."""

    status = 413
    code = "too_large"


class RateLimited(ListenerError):
    """Too many requests; try again later."""

    status = 429
    code = "rate_limited"


class JobFailed(ListenerError):
    """The job failed.

    Raised by a handler that job_handler runs: the job fails with this message, and with `outcome`
    as the person sees it (by default the message, to acknowledge, as Flatfile's `jobs.fail` does),
    e.g. `raise JobFailed("The geocoder is down.", outcome={"message": ..., "next": {"type": "retry"}})`.
    A `retryable` failure is retried under the job's retry policy while it has attempts left.
    """

    status = 422
    code = "job_failed"
    retryable: bool = True

    def __init__(self, message: str | None = None, *, outcome: Any = None, retryable: bool | None = None,
                 details: Any = None) -> None:
        super().__init__(message, details=details)
        self.outcome = outcome
        """An `Outcome` or its dict; None: the message, to acknowledge."""
        if retryable is not None:
            self.retryable = retryable


class NonRetryable(JobFailed):
    """The job failed in a way that retrying cannot fix."""

    status = 422
    code = "non_retryable"
    retryable = False
