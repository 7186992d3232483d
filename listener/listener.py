"""Listener: subscribe handlers to topics and filters, and find the handlers for an event."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from listener.errors import Invalid
from listener.models import Event
from listener.topics import EventFilter, TopicMatcher, compile_filter, compile_topic
from listener.types import Handler, Plugin

__all__ = ["Listener"]


@dataclass(frozen=True, slots=True)
class Registration:
    """One handler on one topic pattern, behind its listener's filters and its own."""

    topic: TopicMatcher
    filters: tuple[EventFilter, ...]
    handler: Handler
    is_async: bool

    def matches(self, event: Event) -> bool:
        return all(f(event) for f in self.filters)


class Listener:
    """A set of handlers subscribed to events.

    ```python
    listener = Listener()

    @listener.on("job:ready", job="workbook:export")
    async def export(event: Event) -> None: ...

    listener.on("commit:created", {"sheet": "contacts"}, on_commit)
    ```

    Handlers may be sync (run in a worker thread) or async. `filter()` and
    `namespace()` return child listeners whose handlers see only matching events.
    """

    def __init__(self, name: str | None = None, *, filter: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._parent: Listener | None = None
        self._filters: tuple[EventFilter, ...] = (compile_filter(filter),) if filter else ()
        self._own: list[Registration] = []
        self._children: list[Listener] = []
        self._by_topic: dict[str, list[Registration]] = {}

    # -- registering ----------------------------------------------------------

    @overload
    def on(self, topic: str | Sequence[str], /, **filter: Any) -> Callable[[Handler], Handler]: ...
    @overload
    def on(
        self, topic: str | Sequence[str], filter: Mapping[str, Any] | None, /, **more: Any
    ) -> Callable[[Handler], Handler]: ...
    @overload
    def on(self, topic: str | Sequence[str], handler: Handler, /) -> Handler: ...
    @overload
    def on(self, topic: str | Sequence[str], filter: Mapping[str, Any] | None, handler: Handler, /) -> Handler: ...

    def on(self, topic: str | Sequence[str], /, *args: Any, **filter_kw: Any) -> Any:
        """Subscribe a handler to one topic or a list of topics, with an optional filter.

        Forms: `on(topic, handler)`, `on(topic, filter, handler)`, and as decorators
        `@on(topic)`, `@on(topic, filter)`, `@on(topic, key=value, ...)`. Topic globs
        (`job:*`, `**`) and filter keys are checked here: an unknown key raises Invalid
        with the nearest valid key.
        """
        spec: dict[str, Any] = {}
        handler: Handler | None = None
        if len(args) > 2:
            raise TypeError("on() takes a topic, an optional filter and an optional handler.")
        for arg in args:
            if isinstance(arg, Mapping):
                spec.update(arg)
            elif arg is None:
                continue
            elif callable(arg) and handler is None:
                handler = arg
            else:
                raise TypeError(f"on() got {arg!r}; expected a filter mapping or a handler.")
        spec.update(filter_kw)
        topics = [topic] if isinstance(topic, str) else list(topic)
        if not topics:
            raise Invalid("on() needs at least one topic.")
        matchers = [compile_topic(t) for t in topics]
        filters = (*self._filters, compile_filter(spec)) if spec else self._filters

        def register(fn: Handler) -> Handler:
            if not callable(fn):
                raise TypeError(f"A handler must be callable, not {fn!r}.")
            is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
            self._own.extend(Registration(m, filters, fn, is_async) for m in matchers)
            self._changed()
            return fn

        return register if handler is None else register(handler)

    def off(self, handler: Handler, topic: str | None = None) -> bool:
        """Remove a handler (from one topic pattern, or from all); True if anything was removed."""
        before = len(self._own)
        self._own = [r for r in self._own if not (r.handler is handler and topic in (None, r.topic.pattern))]
        removed = len(self._own) != before
        for child in self._children:
            removed = child.off(handler, topic) or removed
        self._changed()
        return removed

    def filter(self, filter: Mapping[str, Any] | None = None, /, **more: Any) -> Listener:
        """A child listener whose handlers see only events matching this filter (and the parent's)."""
        spec = {**(filter or {}), **more}
        child = Listener(self.name)
        child._parent = self
        child._filters = (*self._filters, compile_filter(spec)) if spec else self._filters
        self._children.append(child)
        return child

    def namespace(self, namespace: str | Sequence[str]) -> Listener:
        """A child listener for events of spaces in these namespaces (globs allowed)."""
        return self.filter(namespace=namespace if isinstance(namespace, str) else list(namespace))

    def use(self, plugin: Plugin) -> Listener:
        """Hand this listener to a plugin, which registers its handlers on it; returns self to chain."""
        plugin(self)
        return self

    def _changed(self) -> None:
        self._by_topic.clear()
        if self._parent is not None:
            self._parent._changed()

    # -- routing --------------------------------------------------------------

    def registrations(self) -> list[Registration]:
        """Every registration, in dispatch order: this listener's, then each child's."""
        out = list(self._own)
        for child in self._children:
            out.extend(child.registrations())
        return out

    def handlers_for(self, event: Event) -> list[Registration]:
        """The registrations that match `event`, in the order they run."""
        candidates = self._by_topic.get(event.topic)
        if candidates is None:
            # Topic matching is cached per topic name, so each event pays only for its filters.
            candidates = [r for r in self.registrations() if r.topic(event.topic)]
            self._by_topic[event.topic] = candidates
        return [r for r in candidates if r.matches(event)]

    def __repr__(self) -> str:
        return f"Listener(name={self.name!r}, handlers={len(self.registrations())})"
