"""The seams: Protocols and type aliases shared across the package."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from listener.listener import Listener
    from listener.models import Event

__all__ = ["UNSET", "Clock", "Handler", "Plugin", "SystemClock", "Unset"]


class Clock(Protocol):
    """Where the platform gets the time; tests inject one they can move."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


Handler = Callable[["Event"], Awaitable[Any] | Any]
"""A listener handler: sync or async, takes the event, its return value is ignored."""

Plugin = Callable[["Listener"], None]
"""A plugin registers handlers on the listener it is given (`listener.use(plugin)`)."""


class Unset:
    """Marks a keyword argument that was not given, as opposed to one given as None."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset()
