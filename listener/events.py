"""Events (DESIGN.md §3): something that happened, the ids it is about, and what a dispatch hands a handler."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from listener.wire import Model

if TYPE_CHECKING:
    from listener.api import Api

__all__ = ["Event", "EventContext"]


class EventContext(Model):
    """The ids an event is about; filters match on these."""

    job_id: str | None = None
    job: str | None = None
    domain: str | None = None
    operation: str | None = None
    space_id: str | None = None
    workbook_id: str | None = None
    sheet_id: str | None = None
    sheet_slug: str | None = None
    file_id: str | None = None
    document_id: str | None = None
    commit_id: str | None = None
    snapshot_id: str | None = None
    actor_id: str | None = None
    namespace: str | None = None


class Event(Model):
    """Something that happened, as stored in the event log and handed to listeners.

    During a dispatch an event also carries `api` (to act on the platform),
    `cache` (shared by the handlers of this dispatch) and `after_all` (callbacks
    that run once every handler of this dispatch has finished).
    """

    __slots__ = ("_wire",)

    id: str
    seq: int
    topic: str
    context: EventContext
    payload: dict[str, Any] = {}
    created_at: datetime

    _api: Api | None = PrivateAttr(default=None)
    _cache: dict[str, Any] | None = PrivateAttr(default=None)
    _after_all: list[Callable[[], Any]] | None = PrivateAttr(default=None)

    @classmethod
    def trusted(cls, *, id: str, seq: int, topic: str, context: EventContext, payload: dict[str, Any],
                created_at: datetime, api: Api | None = None, cache: dict[str, Any] | None = None,
                after_all: list[Callable[[], Any]] | None = None) -> Event:
        """An event from values the platform itself made, without validation.

        What `model_construct` does, minus its generic work (a quarter of the time): the store builds
        one per event it appends, and the runner one per dispatch, so this is the hottest constructor.
        """
        event = _new_object(cls)
        _set_attribute(event, "__dict__", {"id": id, "seq": seq, "topic": topic, "context": context,
                                           "payload": payload, "created_at": created_at})
        _set_attribute(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))
        _set_attribute(event, "__pydantic_extra__", None)
        _set_attribute(event, "__pydantic_private__", {"_api": api, "_cache": cache, "_after_all": after_all})
        _set_attribute(event, "_wire", None)  # set, so that to_json's lookup never takes the exception path
        return event

    def to_json(self) -> str:
        """The event as JSON, serialized once: the store writes it and every stream socket sends it.

        Events are not changed once appended, so the first serialization stands for the rest. It is
        kept in a slot, not a field or private attribute, so equality and copies never see it.
        """
        text: str | None = getattr(self, "_wire", None)
        if text is None:
            text = self.model_dump_json()
            _set_attribute(self, "_wire", text)
        return text

    def for_dispatch(self, api: Api) -> Event:
        """A copy of this event for one dispatch, with its own cache and after-all list."""
        return Event.trusted(id=self.id, seq=self.seq, topic=self.topic, context=self.context, payload=self.payload,
                             created_at=self.created_at, api=api, cache={}, after_all=[])

    # The dispatch's own attributes are read from pydantic's private store directly: through
    # BaseModel.__getattr__, `self._api` costs about 4 µs, and a job's handlers read them several times.

    @property
    def api(self) -> Api:
        api: Api | None = self.__pydantic_private__["_api"]  # type: ignore[index]
        if api is None:
            raise RuntimeError("This event is not being dispatched, so it has no api.")
        return api

    @property
    def cache(self) -> dict[str, Any]:
        """A dict shared by every handler of this dispatch (Flatfile's `event.cache`)."""
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        cache: dict[str, Any] | None = private["_cache"]
        if cache is None:
            cache = private["_cache"] = {}
        return cache

    def after_all(self, fn: Callable[[], Any]) -> None:
        """Run `fn` (sync or async) once every handler of this dispatch has finished."""
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        if private["_after_all"] is None:
            private["_after_all"] = []
        private["_after_all"].append(fn)

    def after_all_callbacks(self) -> list[Callable[[], Any]]:
        """What `after_all` was given during this dispatch, in order."""
        callbacks: list[Callable[[], Any]] | None = self.__pydantic_private__["_after_all"]  # type: ignore[index]
        return callbacks or []


_EVENT_FIELDS = frozenset(Event.model_fields)
_new_object = object.__new__
_set_attribute = object.__setattr__
