"""CSV out of the platform, streamed in chunks, every cell safe to open in a spreadsheet; and CSV in, row by row.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (CSV injection); such a cell is written with a leading `'`, which
they show as text.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from listener.errors import Invalid

__all__ = ["CsvRow", "csv_chunks", "csv_rows", "safe_cell"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A value as CSV cell text: None is empty, objects are JSON, and formulas are defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


async def csv_chunks(header: Sequence[str], rows: AsyncIterable[Iterable[Any]], *,
                     chunk_rows: int = 500) -> AsyncIterator[bytes]:
    """The CSV (UTF-8, CRLF line ends, a header row) of `rows`, `chunk_rows` rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(h) for h in header])
    count = 0
    async for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        count += 1
        if count % chunk_rows == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


# -- CSV into the platform: records as the bytes stream in --------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One record of a CSV file: its cells, or why they could not be read.

    `number` is the row a spreadsheet shows it on: the first line of the file is row 1 (the header,
    usually), a blank line is a row too, and a quoted cell holding line breaks keeps its record on one row.
    """

    number: int
    cells: list[str]
    error: str | None = None


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)")
_QUOTE_OR_COMMA = re.compile(r'[",]')
MAX_ROW_CHARS = 1_000_000


async def csv_rows(chunks: AsyncIterable[bytes], *, max_row_chars: int = MAX_ROW_CHARS) -> AsyncIterator[CsvRow]:
    """The records of a UTF-8 CSV file (a leading BOM is skipped), read as its chunks arrive.

    Line ends may be CRLF, LF or CR; a quoted cell may hold any of them. Blank lines are skipped
    (their row numbers are not reused). A record the `csv` module refuses, or a quoted cell still open
    at the end of the file, comes as a `CsvRow` with `error` and no cells; the rows after it are read
    as usual.

    Raises:
        Invalid: the bytes are not UTF-8, or a row runs on for more than `max_row_chars` characters
            (an unclosed quote, or not a CSV file at all); no rows follow.
    """
    number = 0
    pending: list[str] = []
    size = 0
    quoted = False
    async for line in _lines(chunks, max_row_chars):
        if quoted or '"' in line:
            quoted = _still_quoted(line, quoted)
        pending.append(line)
        size += len(line)
        if quoted:
            if size > max_row_chars:
                raise Invalid(f"Row {number + 1}: a quoted cell is still open after {max_row_chars:,} characters; "
                              "the file is not valid CSV.", details=[{"field": "file", "message": "unclosed quote"}])
            continue
        number += 1
        text = "".join(pending)
        pending, size = [], 0
        if not text.strip("\r\n"):
            continue
        try:
            cells = next(csv.reader([text]))
        except csv.Error as exc:
            yield CsvRow(number, [], f"not valid CSV: {exc}.")
            continue
        yield CsvRow(number, cells)
    if pending:
        yield CsvRow(number + 1, [], "a quoted cell is not closed before the end of the file.")


def _still_quoted(line: str, quoted: bool) -> bool:
    """Whether a line, begun inside a quoted cell or not, ends inside one (as the `csv` module reads quotes)."""
    field_start = -1 if quoted else 0
    closed_at = -2
    for match in _QUOTE_OR_COMMA.finditer(line):
        at = match.start()
        if match.group() == ",":
            if not quoted:
                field_start = at + 1
        elif quoted:
            quoted, closed_at = False, at
        elif at == closed_at + 1 or at == field_start:
            quoted = True  # `""` inside a quoted cell, or a quote opening a cell
    return quoted


async def _lines(chunks: AsyncIterable[bytes], max_chars: int) -> AsyncIterator[str]:
    """The text's lines, each with its line end (the last one may have none)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    buffer = ""
    read = 0
    final = False
    iterator = aiter(chunks)
    while not final:
        chunk = await anext(iterator, None)
        final = chunk is None
        try:
            buffer += decoder.decode(chunk or b"", final=final)
        except UnicodeDecodeError as exc:
            raise Invalid(f"The file is not UTF-8 text: {exc.reason} near byte {read + max(exc.start, 0):,}.",
                          details=[{"field": "file", "message": "not UTF-8"}]) from None
        read += len(chunk or b"")
        end = 0
        for match in _LINE.finditer(buffer):
            if not final and match.end() == len(buffer) and buffer.endswith("\r"):
                break  # perhaps the first half of a CRLF split between chunks
            yield match.group()
            end = match.end()
        buffer = buffer[end:]
        if len(buffer) > max_chars:
            raise Invalid(f"A line of the file runs on for more than {max_chars:,} characters; it is not a CSV "
                          "file a sheet can take.", details=[{"field": "file", "message": "line too long"}])
    if buffer:
        yield buffer
