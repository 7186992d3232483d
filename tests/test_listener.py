"""Listener: the ways to register, filters compiled at registration, and dispatch order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from listener import Event, EventContext, Invalid, Listener


def event(topic: str = "job:ready", job: str = "workbook:export", **context: Any) -> Event:
    domain, _, operation = job.partition(":")
    ctx = EventContext(job_id="jb_1", job=job, domain=domain, operation=operation, **context)
    return Event(id="ev_1", seq=1, topic=topic, context=ctx, payload={"status": "ready", "isPart": False},
                 created_at=datetime.now(UTC))


def names(listener: Listener, ev: Event) -> list[str]:
    return [r.handler.__name__ for r in listener.handlers_for(ev)]


def test_decorator_with_filter_keywords() -> None:
    listener = Listener()

    @listener.on("job:ready", job="workbook:export")
    async def export(event: Event) -> None: ...

    assert names(listener, event()) == ["export"]
    assert names(listener, event(job="workbook:import")) == []
    assert names(listener, event(topic="job:updated")) == []


def test_call_form_with_filter_dict_and_plain_handler() -> None:
    listener = Listener()

    def on_commit(event: Event) -> None: ...
    def anything(event: Event) -> None: ...

    assert listener.on("commit:created", {"sheet": "contacts"}, on_commit) is on_commit
    listener.on("**", anything)
    commit = event(topic="commit:created", sheet_slug="contacts")
    assert names(listener, commit) == ["on_commit", "anything"]
    assert names(listener, event(topic="commit:created", sheet_slug="orders")) == ["anything"]


def test_decorator_without_filter_and_with_a_list_of_topics() -> None:
    listener = Listener()

    @listener.on(["job:completed", "job:failed"])
    def ended(event: Event) -> None: ...

    @listener.on("job:*", {"job": "workbook:*"})
    def workbook_jobs(event: Event) -> None: ...

    assert names(listener, event(topic="job:failed")) == ["ended", "workbook_jobs"]
    assert names(listener, event(topic="job:ready", job="sheet:x")) == []


def test_unknown_filter_key_is_refused_at_registration() -> None:
    listener = Listener()
    with pytest.raises(Invalid) as raised:
        listener.on("job:ready", shet="contacts")
    assert "'sheet'" in raised.value.message
    with pytest.raises(Invalid):
        listener.on("job::ready", lambda e: None)
    assert listener.registrations() == []


def test_children_see_only_their_events_and_run_after_parents() -> None:
    listener = Listener()
    workbooks = listener.filter(domain="workbook")
    exports = workbooks.filter({"operation": "export"})
    red = listener.namespace("red")

    @exports.on("job:ready")
    def child(event: Event) -> None: ...

    @workbooks.on("job:ready")
    def middle(event: Event) -> None: ...

    @red.on("job:*")
    def namespaced(event: Event) -> None: ...

    @listener.on("job:ready")
    def parent(event: Event) -> None: ...

    assert names(listener, event()) == ["parent", "middle", "child"]
    assert names(listener, event(job="workbook:import")) == ["parent", "middle"]
    assert names(listener, event(job="sheet:export")) == ["parent"]
    assert names(listener, event(namespace="red")) == ["parent", "middle", "child", "namespaced"]


def test_off_and_use() -> None:
    listener = Listener()

    def plugin(target: Listener) -> None:
        target.on("job:ready", handler)

    def handler(event: Event) -> None: ...

    assert listener.use(plugin) is listener
    child = listener.filter(job="workbook:*")
    child.on("job:updated", handler)
    assert names(listener, event()) == ["handler"]
    assert listener.off(handler, "job:ready")
    assert names(listener, event()) == []
    assert names(listener, event(topic="job:updated")) == ["handler"]
    assert listener.off(handler)
    assert not listener.off(handler)
    assert listener.registrations() == []


def test_on_refuses_nonsense() -> None:
    listener = Listener()
    with pytest.raises(TypeError):
        listener.on("job:ready", 42)  # type: ignore[call-overload]
    with pytest.raises(Invalid):
        listener.on([], lambda e: None)
