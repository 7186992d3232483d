"""Files: uploads and downloads, streamed, with their bytes kept apart from their metadata.

The metadata is a domain object (`File`, kind "file") in the store; the bytes are in a `Blobs`
(blobs.py) under the file's id, never under its name: a directory (`DiskBlobs`, beside the SQLite
file by default) or PostgreSQL large objects (`PostgresBlobs`).

A row never points at missing bytes. An upload writes the bytes first (and makes them durable),
then the row and its file:created event in one store write; a delete removes the row and writes
file:deleted first, then the bytes. A crash in between leaves bytes without a row, which no one
can see and `FileService.sweep_orphans()` removes.

```python
file = await platform.api.files.upload(Path("contacts.csv"), space_id=space.id,
                                       actions=[{"operation": "extract", "label": "Extract"}])
data = await platform.api.files.read(file.id)
job = await platform.api.actions.trigger(file.id, "extract")      # file:extract, source = the file
```
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from pydantic import Field
from pydantic_core import from_json

from listener import topics
from listener.errors import Invalid, ListenerError, NotFound, TooLarge
from listener.models import Action, EventContext, File, Model, new_id, parse, refuse_nul
from listener.platform.blobs import CHUNK, Blobs
from listener.platform.store.base import StoredObject

if TYPE_CHECKING:
    from listener.platform.domains import Domains

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "FileService",
    "content_disposition",
    "receive_upload",
    "safe_name",
    "send_file",
    "served_type",
]

DEFAULT_MAX_FILE_SIZE = 100 * 1024 * 1024
MAX_NAME_BYTES = 255  # what most filesystems take as one name

Data = bytes | AsyncIterable[bytes] | Path
"""What `files.upload` takes: the bytes, a file to stream from, or an async iterable of chunks."""


# -- names and types --------------------------------------------------------------

# Bidirectional controls make "evil\u202egpj.exe" display as "evilexe.jpg": never part of a name.
_BIDI = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_LONGEST_EXTENSION = 32


def safe_name(name: str) -> str:
    """The name a file is stored and served under: its last path segment, printable, at most 255 bytes.

    `../../etc/passwd` becomes `passwd`; control and bidirectional-override characters are dropped;
    a name longer than 255 bytes (UTF-8) is cut keeping its extension; an empty name becomes "file".
    Unicode is kept (NFC). Raises Invalid naming `name` for the NUL character.
    """
    refuse_nul(name, "name")
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cs")).translate(_BIDI)
    name = name.strip().rstrip(". ")  # "..", "." and Windows' trailing dots and spaces
    if not name:
        return "file"
    raw = name.encode()
    if len(raw) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    tail = (dot + extension).encode()
    if stem and len(tail) <= _LONGEST_EXTENSION:
        return _cut(stem.encode(), MAX_NAME_BYTES - len(tail)) + dot + extension
    return _cut(raw, MAX_NAME_BYTES)


def _cut(raw: bytes, limit: int) -> str:
    # Cut at a character boundary: a partial UTF-8 sequence at the end is dropped.
    return raw[:limit].decode("utf-8", "ignore")


_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")

# Served as themselves; anything else (text/html, image/svg+xml, XML...) a browser could run as a page.
SAFE_TYPES = frozenset({
    "application/gzip", "application/json", "application/octet-stream", "application/pdf", "application/zip",
    "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "image/gif", "image/jpeg", "image/png", "image/webp",
    "text/csv", "text/plain", "text/tab-separated-values",
})


def _mime_type(given: str | None, name: str) -> str:
    """The stored type: the one given (its essence, lowercased), else guessed from the name."""
    if given is None:
        guessed, _ = mimetypes.guess_type(name, strict=False)
        return guessed or "application/octet-stream"
    essence = given.split(";", 1)[0].strip().lower()
    if not _MIME.fullmatch(essence):
        raise Invalid(f"mimeType: {given[:100]!r} is not a media type such as text/csv.",
                      details=[{"field": "mimeType", "message": "not a media type"}])
    return essence


def served_type(mime_type: str) -> str:
    """The Content-Type a file is downloaded with: its own if it is on the safe list, else octet-stream."""
    return mime_type if mime_type in SAFE_TYPES else "application/octet-stream"


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename`, and RFC 5987 `filename*` when the name is not plain ASCII."""
    fallback = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else "_"
        for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)
    ) or "file"
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    scaled, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{scaled:.4g} {unit}"


def too_large(limit: int) -> TooLarge:
    size = _human(limit) if limit < 1024 else f"{_human(limit)} ({limit} bytes)"
    return TooLarge(f"The file is larger than the limit of {size}.", details={"limit": limit})


# -- the service ------------------------------------------------------------------------


class _FileSpec(Model):
    name: str
    mime_type: str
    space_id: str | None = None
    actions: list[Action] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class _Tally:
    """Counts and hashes chunks as they stream past, refusing any past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    async def through(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError(f"An upload's chunks must be bytes, not {type(chunk).__name__}.")
            self.size += len(chunk)
            if self.size > self.limit:
                raise too_large(self.limit)
            self.sha256.update(chunk)
            yield bytes(chunk)


async def _chunks(data: Data) -> AsyncIterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start:start + CHUNK])
    elif isinstance(data, Path):
        async with await anyio.open_file(data, "rb") as source:
            while chunk := await source.read(CHUNK):
                yield chunk
    else:
        async for chunk in data:
            yield chunk


class FileService:
    """Upload, list, read and delete files (file:created, file:deleted).

    Args:
        domains: the store, clock and acting user.
        blobs: where the bytes go (None: this store has no default; uploads say so).
        max_size: the largest file in bytes; a larger upload raises TooLarge and stores nothing.
    """

    def __init__(self, domains: Domains, blobs: Blobs | None, *, max_size: int = DEFAULT_MAX_FILE_SIZE) -> None:
        if max_size < 1:
            raise Invalid(f"max_file_size: must be at least 1 byte, not {max_size}.")
        self._d = domains
        self.storage = blobs  # None: this store has no default place for bytes
        self.max_size = max_size

    @property
    def blobs(self) -> Blobs:
        """Where this platform keeps file bytes."""
        if self.storage is None:
            raise ListenerError(f"{type(self._d.store).__name__} has no place for file bytes: open the platform "
                                "with files_dir= to keep them in a directory.")
        return self.storage

    async def _context(self, file: File) -> EventContext:
        ctx = await self._d.space_context(file.space_id)
        return ctx.model_copy(update={"file_id": file.id})

    async def upload(
        self,
        data: Data,
        *,
        name: str | None = None,
        mime_type: str | None = None,
        space_id: str | None = None,
        actions: Sequence[dict[str, Any] | Action] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> File:
        """Store a file, streaming it: it is never held whole in memory (file:created).

        Args:
            data: the bytes, a `Path` to read them from, or an async iterable of chunks.
            name: the file's name, made safe (see `safe_name`); default: the path's name, else "file".
            mime_type: its media type; default: guessed from the name, else application/octet-stream.
            space_id: the space it belongs to (NotFound if there is no such space).
            actions: actions mounted on it; triggering one creates a `file:<operation>` job.
            metadata: any JSON object.

        Raises:
            Invalid: a bad name (NUL), media type, action or metadata; nothing is written.
            TooLarge: the data passed the platform's limit; nothing is kept.
        """
        if not isinstance(data, bytes | bytearray | memoryview | Path) and not hasattr(data, "__aiter__"):
            raise TypeError(f"upload takes bytes, a Path or an async iterable of bytes, not {type(data).__name__}.")
        if name is None:
            name = data.name if isinstance(data, Path) else "file"
        clean = safe_name(name)
        spec = parse(_FileSpec, {"name": clean, "mime_type": _mime_type(mime_type, clean), "space_id": space_id,
                                 "actions": list(actions or []), "metadata": metadata or {}}, what="file")
        operations = [a.operation for a in spec.actions]
        for i, operation in enumerate(operations):
            if operation in operations[:i]:
                raise Invalid(f"actions.{i}.operation: {operation!r} is mounted twice on this file.",
                              details=[{"field": f"actions.{i}.operation", "message": "duplicate operation"}])
        if isinstance(data, bytes | bytearray | memoryview) and len(data) > self.max_size:
            raise too_large(self.max_size)
        ctx = await self._d.space_context(spec.space_id)  # NotFound for an unknown space, before any byte
        file_id = new_id("fl")
        tally = _Tally(self.max_size)
        blobs = self.blobs
        await blobs.write(file_id, tally.through(_chunks(data)))
        file = File(id=file_id, name=spec.name, size=tally.size, mime_type=spec.mime_type,
                    sha256=tally.sha256.hexdigest(), space_id=spec.space_id, actions=spec.actions,
                    metadata=spec.metadata, created_by=self._d.actor, created_at=self._d.clock.now())
        event = self._d.event(topics.FILE_CREATED, ctx.model_copy(update={"file_id": file_id}), _payload(file))
        try:
            await self._d.store.put_objects([StoredObject(file.id, "file", file.space_id,
                                                          file.model_dump(mode="json"))], [event])
        except Exception:
            # Only bytes no row points at are removed: a write reported failed may still have committed
            # (its answer lost). Left behind (a crash, a cancelled write), sweep_orphans removes them.
            with anyio.CancelScope(shield=True):
                if not await self._has_row(file_id):
                    await blobs.delete(file_id)
            raise
        return file

    async def _has_row(self, file_id: str) -> bool:
        try:
            await self._d.store.get_object(file_id, "file")
        except NotFound:
            return False
        except Exception:
            return True  # cannot tell: keep the bytes
        return True

    async def get(self, file_id: str) -> File:
        """A file's metadata: name, size, media type, sha256, space, actions."""
        return File.model_validate((await self._d.store.get_object(file_id, "file")).doc)

    async def list(self, *, space_id: str | None = None) -> list[File]:
        """Files in upload order, optionally only those of one space."""
        return [File.model_validate(o.doc) for o in await self._d.store.list_objects("file", space_id)]

    async def stream(self, file_id: str) -> AsyncGenerator[bytes, None]:
        """A file's bytes, a chunk at a time (NotFound on the first chunk if there is no such file)."""
        await self.get(file_id)
        async with aclosing(self.blobs.read(file_id)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def read(self, file_id: str) -> bytes:
        """A file's bytes, whole: for small files (`stream` the large ones)."""
        out = bytearray()
        async with aclosing(self.stream(file_id)) as chunks:
            async for chunk in chunks:
                out += chunk
        return bytes(out)

    async def delete(self, file_id: str) -> None:
        """Delete a file: its metadata (file:deleted), then its bytes."""
        file = await self.get(file_id)
        event = self._d.event(topics.FILE_DELETED, await self._context(file), _payload(file))
        # NotFound if someone deleted it meanwhile: one file:deleted per file.
        await self._d.store.change_object(file_id, "file", lambda _: (None, [event]))
        with anyio.CancelScope(shield=True):
            await self.blobs.delete(file_id)

    async def sweep_orphans(self, *, older_than: timedelta = timedelta(hours=1)) -> int:
        """Remove bytes that no file points at (left by a crash mid-upload or mid-delete); returns how many.

        Only bytes last written longer than `older_than` ago are candidates, so that an upload whose
        metadata is about to be written keeps its bytes.
        """
        removed = 0
        for key in await self.blobs.keys(older_than=older_than):
            try:
                await self._d.store.get_object(key, "file")
            except NotFound:
                await self.blobs.delete(key)
                removed += 1
        return removed


def _payload(file: File) -> dict[str, Any]:
    # createdBy lets the server show a member the events of its own files only.
    return {"name": file.name, "size": file.size, "mimeType": file.mime_type, "createdBy": file.created_by}


# -- HTTP: multipart in, a stream out -------------------------------------------------------

FORM_FIELDS = ("spaceId", "name", "mimeType", "actions", "metadata")
MAX_FIELD = 64 * 1024
# What a form may hold besides the file: its other fields, and part headers and boundaries.
FORM_OVERHEAD = len(FORM_FIELDS) * MAX_FIELD + 64 * 1024
_IDENTITY = (None, "", "binary", "8bit", "7bit", "identity")


def _malformed(exc: Exception) -> Invalid:
    return Invalid(f"The multipart/form-data body is malformed: {exc}.",
                   details=[{"field": "(body)", "message": "malformed multipart"}])


async def _field_text(part: BodyPartReader, name: str) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        raw += chunk
        if len(raw) > MAX_FIELD:
            raise Invalid(f"{name}: a form field holds at most {MAX_FIELD // 1024} KiB.",
                          details=[{"field": name, "message": "too long"}])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{name}: not UTF-8 text.", details=[{"field": name, "message": "not UTF-8"}]) from None


def _json_field(fields: dict[str, str], name: str, kind: type) -> Any:
    if name not in fields:
        return None
    try:
        value = from_json(fields[name], allow_inf_nan=False)
    except ValueError as exc:
        raise Invalid(f"{name}: not valid JSON: {exc}.",
                      details=[{"field": name, "message": "malformed JSON"}]) from None
    if not isinstance(value, kind):
        what = "an array of actions" if kind is list else "a JSON object"
        raise Invalid(f"{name}: must be {what}.", details=[{"field": name, "message": f"not {what}"}])
    return value


async def _file_chunks(reader: MultipartReader, part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk
        after = await reader.next()
    except ValueError as exc:
        raise _malformed(exc) from None
    if after is not None:
        # The fields describe the file and are checked before any byte is kept: they come first.
        field = getattr(after, "name", None) or "(part)"
        raise Invalid(f"{field}: the `file` field must be the last of the form, after "
                      f"{', '.join(FORM_FIELDS)}.", details=[{"field": field, "message": "after file"}])


async def receive_upload(request: web.Request, files: FileService) -> File:
    """Read a multipart/form-data upload as it arrives and store it with `files.upload`.

    The form: optional text fields `spaceId`, `name`, `mimeType`, `actions` (a JSON array) and
    `metadata` (a JSON object), then the field `file` with the bytes (its filename and
    Content-Type are the defaults of `name` and `mimeType`). The server's JSON body limit does not
    apply (aiohttp applies it only to bodies read whole); the file limit does, up front from
    Content-Length and again as the bytes stream in.
    """
    limit = files.max_size
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD:
        raise too_large(limit)
    if request.content_type != "multipart/form-data":
        raise Invalid("An upload is a multipart/form-data body with the bytes in a field named `file`.",
                      details=[{"field": "(body)", "message": "not multipart/form-data"}])
    fields: dict[str, str] = {}
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise Invalid("file: the form has no `file` field with the bytes to upload.",
                              details=[{"field": "file", "message": "missing"}])
            if not isinstance(part, BodyPartReader):
                raise Invalid("A form field may not be multipart itself.",
                              details=[{"field": "(body)", "message": "nested multipart"}])
            if part.name == "file":
                break
            if part.name not in FORM_FIELDS:
                raise Invalid(f"{part.name}: not a field of an upload; use {', '.join(FORM_FIELDS)} and file.",
                              details=[{"field": str(part.name), "message": "unknown field"}])
            if part.name in fields:
                raise Invalid(f"{part.name}: given twice.", details=[{"field": part.name, "message": "duplicate"}])
            fields[part.name] = await _field_text(part, part.name)
    except ListenerError:
        raise
    except (ValueError, AssertionError) as exc:
        raise _malformed(exc) from None
    fields = {k: v for k, v in fields.items() if v}  # an empty field of a form is one not filled in
    for header in (hdrs.CONTENT_TRANSFER_ENCODING, hdrs.CONTENT_ENCODING):
        encoding = part.headers.get(header)
        if encoding is not None and encoding.strip().lower() not in _IDENTITY:
            raise Invalid(f"file: {header} {encoding!r} is not supported; send the bytes as they are.",
                          details=[{"field": "file", "message": f"unsupported {header}"}])
    # Browsers send a quote in a filename as %22 (and nothing else percent-encoded).
    name = fields.get("name") or (part.filename or "").replace("%22", '"')
    mime_type = fields.get("mimeType") or _part_type(part)
    return await files.upload(_file_chunks(reader, part), name=name, mime_type=mime_type,
                              space_id=fields.get("spaceId"), actions=_json_field(fields, "actions", list),
                              metadata=_json_field(fields, "metadata", dict))


def _part_type(part: BodyPartReader) -> str | None:
    # Clients send application/octet-stream when they do not know; the name may tell more then.
    given = part.headers.get(hdrs.CONTENT_TYPE, "").split(";", 1)[0].strip().lower()
    return given if _MIME.fullmatch(given) and given != "application/octet-stream" else None


async def send_file(request: web.Request, file: File, chunks: AsyncGenerator[bytes, None]) -> web.StreamResponse:
    """Stream a file's bytes as a download: an attachment under its safe name, never sniffed."""
    async with aclosing(chunks):
        first = await anext(chunks, b"")  # missing bytes are a NotFound before the answer starts
        response = web.StreamResponse(headers={
            hdrs.CONTENT_TYPE: served_type(file.mime_type),
            hdrs.CONTENT_DISPOSITION: content_disposition(file.name),
            "X-Content-Type-Options": "nosniff",
            hdrs.CACHE_CONTROL: "private, no-store",
        })
        response.content_length = file.size
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away mid-download: nothing to answer
        return response
