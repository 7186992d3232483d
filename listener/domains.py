"""The domain objects jobs work on: spaces, workbooks, sheets, records and commits, files, documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from listener.actions import Action
from listener.wire import Model, NonEmpty

__all__ = [
    "Commit",
    "Document",
    "DocumentBody",
    "DocumentCreate",
    "DocumentTitle",
    "DocumentUpdate",
    "File",
    "Record",
    "Sheet",
    "SheetConfig",
    "SheetField",
    "Space",
    "SpaceCreate",
    "Workbook",
    "WorkbookCreate",
]


class Space(Model):
    """A place for workbooks; its `namespace` scopes listeners (`listener.namespace("red")`)."""

    id: str
    name: str
    namespace: str | None = None
    metadata: dict[str, Any] = {}
    created_at: datetime


class SheetField(Model):
    """A column of a sheet."""

    key: NonEmpty
    type: Literal["string", "number", "boolean", "date", "enum", "reference"] = "string"
    label: str | None = None
    description: str | None = None


class SheetConfig(Model):
    """A sheet as given to `workbooks.create`; the slug defaults to the name, slugified."""

    name: NonEmpty
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")] | None = None
    fields: list[SheetField] = []
    actions: list[Action] = []


class Sheet(Model):
    id: str
    workbook_id: str
    name: str
    slug: str
    fields: list[SheetField]
    actions: list[Action] = []
    created_at: datetime


class Workbook(Model):
    id: str
    name: str
    space_id: str | None = None
    sheets: list[Sheet] = []
    actions: list[Action] = []
    labels: list[str] = []
    metadata: dict[str, Any] = {}
    created_at: datetime


class Record(Model):
    id: str
    sheet_id: str
    values: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class File(Model):
    """An uploaded file: its bytes are in the platform's file storage, served under `name`.

    `name` is the uploaded name made safe (no path, no control characters, at most 255 bytes);
    `actions` mounted on it trigger `file:<operation>` jobs whose source is the file.
    """

    id: str
    name: str
    size: int
    mime_type: str
    sha256: str
    space_id: str | None = None
    actions: list[Action] = []
    metadata: dict[str, Any] = {}
    created_by: str | None = None
    readers: list[str] = []
    """Users who may read it besides its creator: those whose jobs it is attached to."""
    created_at: datetime


class Document(Model):
    """A page of Markdown in a space, with actions (Flatfile's documents)."""

    id: str
    title: str
    body: str = ""
    space_id: str | None = None
    actions: list[Action] = []
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null: leave it out to keep the current value")
    return value


def _without_null(schema: dict[str, Any]) -> None:
    # The fields are optional (None in Python: not given) but never null on the wire: so says the schema.
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(o for o in options if o.get("type") != "null"))
        prop.pop("default", None)


DocumentTitle = Annotated[str, Field(min_length=1, max_length=500)]
DocumentBody = Annotated[str, Field(max_length=1_000_000)]


class DocumentCreate(Model):
    """The body of `documents.create`: the body is Markdown, stored as given (nothing renders it on the server)."""

    title: DocumentTitle
    body: DocumentBody = ""
    space_id: str | None = None
    actions: list[Action] = []


class DocumentUpdate(Model):
    """The body of `documents.update`: only the fields given (`model_fields_set`) change; none may be null.

    An empty body or action list clears it; a title cannot be cleared.
    """

    model_config = ConfigDict(json_schema_extra=_without_null)

    title: Annotated[DocumentTitle | None, BeforeValidator(_not_null)] = None
    body: Annotated[DocumentBody | None, BeforeValidator(_not_null)] = None
    actions: Annotated[list[Action] | None, BeforeValidator(_not_null)] = None


class Commit(Model):
    """One change to a sheet's records; each emits `commit:created`."""

    id: str
    sheet_id: str
    workbook_id: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    created_by: str | None = None
    created_at: datetime


class WorkbookCreate(Model):
    """The body of `workbooks.create`."""

    name: NonEmpty
    space_id: str | None = None
    sheets: list[SheetConfig] = []
    actions: list[Action] = []
    labels: list[str] = []
    metadata: dict[str, Any] = {}


class SpaceCreate(Model):
    """The body of `spaces.create`."""

    name: NonEmpty
    namespace: str | None = None
    metadata: dict[str, Any] = {}
