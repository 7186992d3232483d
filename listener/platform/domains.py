"""The domains jobs work on: spaces, workbooks, sheets, records and commits, and their actions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from listener import topics
from listener.errors import Invalid, NotFound
from listener.models import (
    Action,
    Commit,
    Document,
    DocumentCreate,
    DocumentUpdate,
    EventContext,
    InputForm,
    Job,
    JobCreate,
    JobTrigger,
    Page,
    Record,
    Sheet,
    SheetField,
    Space,
    SpaceCreate,
    Workbook,
    WorkbookCreate,
    new_id,
    parse,
    refuse_nul,
)
from listener.platform.jobs import JobService
from listener.platform.store.base import NewEvent, RecordChanges, Store, StoredObject
from listener.types import UNSET, Clock

__all__ = ["ActionService", "DocumentService", "Domains", "RecordService", "SheetService", "SpaceService",
           "WorkbookService"]

_KINDS = {"sp": "space", "wb": "workbook", "sh": "sheet", "fl": "file", "dc": "document"}


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "sheet"


class Domains:
    """What the domain services share: the store, the clock, the acting user."""

    def __init__(self, store: Store, clock: Clock, actor: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.actor = actor

    def event(self, topic: str, context: EventContext, payload: dict[str, Any] | None = None) -> NewEvent:
        if self.actor:
            context = context.model_copy(update={"actor_id": self.actor})
        return NewEvent(topic, context, payload or {}, self.clock.now())

    async def context_of(self, object_id: str) -> EventContext:
        """The ids an object belongs to, for the context of events and jobs about it."""
        kind = _KINDS.get(object_id.split("_", 1)[0])
        try:
            obj = await self.store.get_object(object_id)
        except NotFound:
            obj = None
        if kind is None or obj is None:
            raise Invalid(f"source: {object_id!r} is not the id of an existing space, workbook, sheet, file "
                          "or document.", details=[{"field": "source", "message": "unknown object"}])
        if obj.kind == "space":
            return EventContext(space_id=obj.id, namespace=obj.doc.get("namespace"))
        if obj.kind == "workbook":
            return (await self.space_context(obj.doc.get("spaceId"))).model_copy(update={"workbook_id": obj.id})
        if obj.kind == "sheet":
            base = await self.context_of(obj.doc["workbookId"])
            return base.model_copy(update={"sheet_id": obj.id, "sheet_slug": obj.doc["slug"]})
        if obj.kind == "document":
            return (await self.space_context(obj.doc.get("spaceId"))).model_copy(update={"document_id": obj.id})
        if obj.kind == "file":
            return (await self.space_context(obj.doc.get("spaceId"))).model_copy(update={"file_id": obj.id})
        return EventContext(**{f"{obj.kind}_id": obj.id})

    async def space_context(self, space_id: str | None) -> EventContext:
        if space_id is None:
            return EventContext()
        space = await self.store.get_object(space_id, "space")
        return EventContext(space_id=space_id, namespace=space.doc.get("namespace"))


class SpaceService:
    def __init__(self, domains: Domains) -> None:
        self._d = domains

    async def create(self, *, name: str, namespace: str | None = None, metadata: dict[str, Any] | None = None) -> Space:
        """Create a space (space:created); listeners scoped with `namespace(...)` see only its events."""
        spec = parse(SpaceCreate, {"name": name, "namespace": namespace, "metadata": metadata or {}}, what="space")
        space = Space(id=new_id("sp"), created_at=self._d.clock.now(), **spec.model_dump(by_alias=False))
        doc = space.model_dump(mode="json")
        await self._d.store.put_objects([StoredObject(space.id, "space", None, doc)],
                                        [self._d.event(topics.SPACE_CREATED, EventContext(space_id=space.id,
                                                                                          namespace=space.namespace))])
        return space

    async def get(self, space_id: str) -> Space:
        return Space.model_validate((await self._d.store.get_object(space_id, "space")).doc)

    async def list(self) -> list[Space]:
        return [Space.model_validate(o.doc) for o in await self._d.store.list_objects("space")]


class WorkbookService:
    def __init__(self, domains: Domains) -> None:
        self._d = domains

    async def create(
        self,
        *,
        name: str,
        sheets: Sequence[dict[str, Any]] = (),
        actions: Sequence[dict[str, Any] | Action] = (),
        space_id: str | None = None,
        labels: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Workbook:
        """Create a workbook with its sheets and mounted actions (workbook:created)."""
        spec = parse(WorkbookCreate, {"name": name, "sheets": list(sheets), "actions": list(actions),
                                      "space_id": space_id, "labels": list(labels), "metadata": metadata or {}},
                     what="workbook")
        if spec.space_id is not None:
            await self._d.store.get_object(spec.space_id, "space")
        now = self._d.clock.now()
        workbook_id = new_id("wb")
        slugs: set[str] = set()
        built: list[Sheet] = []
        for i, config in enumerate(spec.sheets):
            slug = config.slug or _slugify(config.name)
            if slug in slugs:
                raise Invalid(f"sheets.{i}.slug: {slug!r} is used by another sheet of this workbook.",
                              details=[{"field": f"sheets.{i}.slug", "message": "duplicate slug"}])
            slugs.add(slug)
            built.append(Sheet(id=new_id("sh"), workbook_id=workbook_id, name=config.name, slug=slug,
                               fields=config.fields, actions=config.actions, created_at=now))
        workbook = Workbook(id=workbook_id, name=spec.name, space_id=spec.space_id, sheets=built,
                            actions=spec.actions, labels=spec.labels, metadata=spec.metadata, created_at=now)
        doc = workbook.model_dump(mode="json", exclude={"sheets"})
        objects = [StoredObject(workbook.id, "workbook", spec.space_id, doc)]
        objects += [StoredObject(s.id, "sheet", workbook.id, s.model_dump(mode="json")) for s in built]
        ctx = (await self._d.space_context(spec.space_id)).model_copy(update={"workbook_id": workbook.id})
        events = [self._d.event(topics.WORKBOOK_CREATED, ctx)]
        events += [self._d.event(topics.SHEET_CREATED, ctx.model_copy(update={"sheet_id": s.id, "sheet_slug": s.slug}))
                   for s in built]
        await self._d.store.put_objects(objects, events)
        return workbook

    async def get(self, workbook_id: str) -> Workbook:
        obj = await self._d.store.get_object(workbook_id, "workbook")
        sheets = await self._d.store.list_objects("sheet", workbook_id)
        return Workbook.model_validate({**obj.doc, "sheets": [s.doc for s in sheets]})

    async def list(self, *, space_id: str | None = None) -> list[Workbook]:
        return [await self.get(o.id) for o in await self._d.store.list_objects("workbook", space_id)]

    async def delete(self, workbook_id: str) -> None:
        """Delete a workbook, its sheets and their records (workbook:deleted)."""
        workbook = await self.get(workbook_id)
        ctx = await self._d.context_of(workbook_id)
        ids = [workbook.id, *(s.id for s in workbook.sheets)]
        await self._d.store.delete_objects(ids, [self._d.event(topics.WORKBOOK_DELETED, ctx)])


def _listed(value: Any) -> Any:
    """A tuple or other sequence as a list, for validation; anything else as is, to be named if it is wrong."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str | bytes) else value


def _check_actions(actions: Sequence[Action]) -> None:
    seen: set[str] = set()
    for i, action in enumerate(actions):
        if action.operation in seen:
            raise Invalid(f"actions.{i}.operation: {action.operation!r} is mounted twice on this document.",
                          details=[{"field": f"actions.{i}.operation", "message": "duplicate operation"}])
        seen.add(action.operation)


class DocumentService:
    """Documents: pages of Markdown in a space, with actions that start `document:<operation>` jobs.

    The body is text, stored and answered exactly as given: nothing on the server renders or sanitises
    it, so whatever shows it must render the Markdown safely (escaping raw HTML as any user's text).
    """

    def __init__(self, domains: Domains) -> None:
        self._d = domains

    async def _context(self, document: Document) -> EventContext:
        ctx = await self._d.space_context(document.space_id)
        return ctx.model_copy(update={"document_id": document.id})

    async def create(
        self,
        *,
        title: str,
        body: str = "",
        space_id: str | None = None,
        actions: Sequence[dict[str, Any] | Action] = (),
    ) -> Document:
        """Create a document, in a space if given (document:created)."""
        spec = parse(DocumentCreate, {"title": title, "body": body, "space_id": space_id,
                                      "actions": _listed(actions)}, what="document")
        _check_actions(spec.actions)
        now = self._d.clock.now()
        document = Document(id=new_id("dc"), title=spec.title, body=spec.body, space_id=spec.space_id,
                            actions=spec.actions, created_by=self._d.actor, created_at=now, updated_at=now)
        ctx = await self._context(document)  # NotFound for an unknown space, before anything is written
        await self._d.store.put_objects(
            [StoredObject(document.id, "document", spec.space_id, document.model_dump(mode="json"))],
            [self._d.event(topics.DOCUMENT_CREATED, ctx, {"title": document.title})])
        return document

    async def get(self, document_id: str) -> Document:
        return Document.model_validate((await self._d.store.get_object(document_id, "document")).doc)

    async def list(self, *, space_id: str | None = None) -> list[Document]:
        """Documents in creation order, optionally only those of one space."""
        return [Document.model_validate(o.doc) for o in await self._d.store.list_objects("document", space_id)]

    async def update(
        self,
        document_id: str,
        *,
        title: str = UNSET,  # type: ignore[assignment]
        body: str = UNSET,  # type: ignore[assignment]
        actions: Sequence[dict[str, Any] | Action] = UNSET,  # type: ignore[assignment]
    ) -> Document:
        """Change a document's title, body or actions; only those given change (document:updated)."""
        given = {"title": title, "body": body, "actions": _listed(actions)}
        spec = parse(DocumentUpdate, {k: v for k, v in given.items() if v is not UNSET}, what="document")
        if spec.actions is not None:
            _check_actions(spec.actions)
        document = await self.get(document_id)
        changes = {name: getattr(spec, name) for name in spec.model_fields_set}
        if not changes:
            return document
        ctx = await self._context(document)  # the space never changes, so neither does the context
        now = self._d.clock.now()
        event = self._d.event(topics.DOCUMENT_UPDATED, ctx,
                              {"changed": sorted(DocumentUpdate.model_fields[n].alias or n for n in changes)})

        def change(obj: StoredObject) -> tuple[dict[str, Any], list[NewEvent]]:
            # Applied to the document as stored when the write runs, so a concurrent update of another
            # field is kept, and a document deleted meanwhile is NotFound rather than brought back.
            current = Document.model_validate(obj.doc)
            return current.model_copy(update={**changes, "updated_at": now}).model_dump(mode="json"), [event]

        stored, _ = await self._d.store.change_object(document_id, "document", change)
        assert stored is not None
        return Document.model_validate(stored.doc)

    async def delete(self, document_id: str) -> None:
        """Delete a document (document:deleted)."""
        ctx = await self._context(await self.get(document_id))
        event = self._d.event(topics.DOCUMENT_DELETED, ctx)
        # NotFound if it went meanwhile: of two concurrent deletes, one succeeds and one event is emitted.
        await self._d.store.change_object(document_id, "document", lambda _: (None, [event]))


class SheetService:
    def __init__(self, domains: Domains) -> None:
        self._d = domains

    async def get(self, sheet_id: str) -> Sheet:
        return Sheet.model_validate((await self._d.store.get_object(sheet_id, "sheet")).doc)

    async def list(self, *, workbook_id: str) -> list[Sheet]:
        return [Sheet.model_validate(o.doc) for o in await self._d.store.list_objects("sheet", workbook_id)]


_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "boolean": (bool,)}


def _check_values(sheet: Sheet, values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise Invalid(f"{where}: a record's values must be an object of field keys to values.",
                      details=[{"field": where, "message": "not an object"}])
    refuse_nul(values, where)
    if not sheet.fields:
        return values
    fields: dict[str, SheetField] = {f.key: f for f in sheet.fields}
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            raise Invalid(f"{where}.{key}: sheet {sheet.slug!r} has no field {key!r} "
                          f"(its fields: {', '.join(fields)}).", details=[{"field": f"{where}.{key}",
                                                                          "message": "unknown field"}])
        expected = _TYPES.get(field.type)
        ok = value is None or expected is None or (isinstance(value, expected) and
                                                   not (field.type == "number" and isinstance(value, bool)))
        if not ok:
            raise Invalid(f"{where}.{key}: field {key!r} is a {field.type}, not {type(value).__name__}.",
                          details=[{"field": f"{where}.{key}", "message": f"expected {field.type}"}])
    return values


class RecordService:
    """Records change in commits; every commit emits commit:created."""

    def __init__(self, domains: Domains, sheets: SheetService) -> None:
        self._d = domains
        self._sheets = sheets

    async def _commit(self, sheet: Sheet, changes: RecordChanges) -> Commit:
        commit = Commit(id=new_id("cm"), sheet_id=sheet.id, workbook_id=sheet.workbook_id,
                        inserted=len(changes.insert), updated=len(changes.update), deleted=len(changes.delete),
                        created_by=self._d.actor, created_at=self._d.clock.now())
        ctx = (await self._d.context_of(sheet.id)).model_copy(update={"commit_id": commit.id})
        payload = commit.model_dump(mode="json")
        await self._d.store.change_records(changes, [self._d.event(topics.COMMIT_CREATED, ctx, payload)])
        return commit

    async def insert(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> list[Record]:
        """Insert records (each a dict of field key to value) in one commit."""
        sheet = await self._sheets.get(sheet_id)
        now = self._d.clock.now()
        rows = [Record(id=new_id("rc"), sheet_id=sheet.id, values=_check_values(sheet, v, f"records.{i}"),
                       created_at=now, updated_at=now) for i, v in enumerate(records)]
        await self._commit(sheet, RecordChanges(sheet.id, insert=rows))
        return rows

    async def update(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> Commit:
        """Update records given as `{"id": ..., "values": {...}}`; only the values given change."""
        sheet = await self._sheets.get(sheet_id)
        update: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(records):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise Invalid(f"records.{i}.id: each update needs the record's id.",
                              details=[{"field": f"records.{i}.id", "message": "missing"}])
            update[item["id"]] = _check_values(sheet, item.get("values", {}), f"records.{i}.values")
        return await self._commit(sheet, RecordChanges(sheet.id, update=update, updated_at=self._d.clock.now()))

    async def delete(self, sheet_id: str, ids: Sequence[str]) -> Commit:
        """Delete records by id in one commit."""
        sheet = await self._sheets.get(sheet_id)
        return await self._commit(sheet, RecordChanges(sheet.id, delete=list(ids)))

    async def get(self, sheet_id: str, *, limit: int = 100, offset: int = 0) -> Page[Record]:
        """A page of a sheet's records, in insertion order."""
        await self._sheets.get(sheet_id)
        items, total = await self._d.store.list_records(sheet_id, limit, offset)
        return Page[Record](items=items, total=total, limit=limit, offset=offset)


def _check_input(form: InputForm | None, values: dict[str, Any]) -> dict[str, Any]:
    if form is None:
        return values
    out = {f.key: f.default_value for f in form.fields if f.default_value is not None}
    known = {f.key: f for f in form.fields}
    for key, value in values.items():
        field = known.get(key)
        if field is None:
            raise Invalid(f"input.{key}: the action's form has no field {key!r} (its fields: {', '.join(known)}).",
                          details=[{"field": f"input.{key}", "message": "unknown field"}])
        options = [o.value for o in (field.config.options if field.config else [])]
        if field.type == "enum" and options and value not in options:
            raise Invalid(f"input.{key}: {value!r} is not one of {options}.",
                          details=[{"field": f"input.{key}", "message": "not an option"}])
        if field.type == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Invalid(f"input.{key}: must be a number.", details=[{"field": f"input.{key}", "message": "number"}])
        if field.type == "boolean" and not isinstance(value, bool):
            raise Invalid(f"input.{key}: must be true or false.",
                          details=[{"field": f"input.{key}", "message": "boolean"}])
        out[key] = value
    for field in form.fields:
        if any(c.type == "required" for c in field.constraints) and out.get(field.key) in (None, ""):
            raise Invalid(f"input.{field.key}: {field.label!r} is required.",
                          details=[{"field": f"input.{field.key}", "message": "required"}])
    return out


class ActionService:
    """Trigger the actions mounted on workbooks and sheets."""

    def __init__(self, domains: Domains, jobs: JobService) -> None:
        self._d = domains
        self._jobs = jobs

    async def trigger(self, source_id: str, operation: str, *, input: dict[str, Any] | None = None) -> Job:
        """Press an action's button: creates the job `domain:operation` with trigger immediate.

        The job's source is the object the action is mounted on; input-form values become `job.input`.
        """
        obj = await self._d.store.get_object(source_id)
        actions = [Action.model_validate(a) for a in obj.doc.get("actions", [])]
        action = next((a for a in actions if a.operation == operation), None)
        if action is None:
            names = ", ".join(a.operation for a in actions) or "none"
            raise NotFound(f"{obj.kind.capitalize()} {source_id} has no action {operation!r} (its actions: {names}).",
                           details={"id": source_id, "operation": operation})
        if any(c.type == "hasData" for c in action.constraints) and not await self._has_data(obj):
            raise Invalid(f"Action {operation!r} needs data: {obj.kind} {source_id} has no records.",
                          details=[{"field": "operation", "message": "hasData"}])
        spec = parse(JobCreate, {"type": obj.kind, "operation": operation, "source": source_id,
                                 "trigger": JobTrigger.IMMEDIATE, "mode": action.mode,
                                 "input": _check_input(action.input_form, input or {})}, what="job")
        return await self._jobs.create_from(spec)

    async def _has_data(self, obj: StoredObject) -> bool:
        if obj.kind == "file":
            return bool(obj.doc.get("size"))  # a file has data when it has bytes
        sheet_ids = [obj.id] if obj.kind == "sheet" else [s.id for s in await self._d.store.list_objects("sheet",
                                                                                                          obj.id)]
        for sheet_id in sheet_ids:
            if (await self._d.store.list_records(sheet_id, 1, 0))[1]:
                return True
        return False
