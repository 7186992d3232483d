"""Listener: long-running jobs driven by events, and the platform they run on."""

from listener.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    JobFailed,
    ListenerError,
    NonRetryable,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
)
from listener.listener import Listener
from listener.models import (
    Action,
    Event,
    EventContext,
    Job,
    JobError,
    JobMode,
    JobStatus,
    JobTrigger,
    JobType,
    Outcome,
    Page,
)
from listener.platform import Platform
from listener.process import tune_gc
from listener.runner import Runner

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Conflict",
    "Event",
    "EventContext",
    "Forbidden",
    "Gone",
    "Invalid",
    "Job",
    "JobError",
    "JobFailed",
    "JobMode",
    "JobStatus",
    "JobTrigger",
    "JobType",
    "Listener",
    "ListenerError",
    "NonRetryable",
    "NotFound",
    "Outcome",
    "Page",
    "Platform",
    "RateLimited",
    "Runner",
    "TooLarge",
    "Unauthorized",
    "tune_gc",
]
