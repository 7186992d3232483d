"""What a person sees when a job ends: the outcome, and the `next` step it offers (Next*)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from listener.wire import Model, NonEmpty

__all__ = [
    "FileRef",
    "Next",
    "NextClearFilters",
    "NextDownload",
    "NextFiles",
    "NextId",
    "NextRetry",
    "NextSnapshot",
    "NextUrl",
    "NextView",
    "NextWait",
    "Outcome",
    "OutcomeTrigger",
    "SafeUrl",
]


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def _safe_url(url: str) -> str:
    # Browsers drop tabs and newlines inside a scheme ("java\tscript:"), so any
    # whitespace or control character is refused rather than normalised.
    if not url or _CONTROL_OR_SPACE.search(url):
        raise ValueError("must be a non-empty URL without spaces or control characters")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("", "http", "https"):
        raise ValueError(f"must be an http(s) or relative URL, not {scheme}:")
    return url


SafeUrl = Annotated[str, AfterValidator(_safe_url)]


class NextId(Model):
    """Navigate inside the app to an object (`path` and `query` refine where)."""

    type: Literal["id"]
    id: NonEmpty
    path: str | None = None
    query: str | None = None
    label: str | None = None


class NextUrl(Model):
    """Open a link in a new tab."""

    type: Literal["url"]
    url: SafeUrl
    label: str | None = None


class NextDownload(Model):
    """Download one file from a URL."""

    type: Literal["download"]
    url: SafeUrl
    file_name: str | None = None
    label: str | None = None


class FileRef(Model):
    file_id: NonEmpty


class NextFiles(Model):
    """Download several files stored on the platform."""

    type: Literal["files"]
    files: Annotated[list[FileRef], Field(min_length=1)]
    label: str | None = None


class NextSnapshot(Model):
    """Go to a snapshot of a sheet (`api.snapshots.create`); `sheet_id` may be left out: the snapshot knows it."""

    type: Literal["snapshot"]
    snapshot_id: NonEmpty
    sheet_id: NonEmpty | None = None
    label: str | None = None


class NextView(Model):
    """Go to a sheet with some columns hidden."""

    type: Literal["view"]
    sheet_id: NonEmpty
    hidden_columns: list[str] = []
    label: str | None = None


class NextRetry(Model):
    """Run the job again; with `failed_items`, only the items its error log names, as a new job."""

    type: Literal["retry"]
    failed_items: bool = False
    label: str | None = None


class NextWait(Model):
    """Keep the dialog open with no button (the UI may fade it or throw confetti)."""

    type: Literal["wait"]
    fade: bool = False
    confetti: bool = False
    label: str | None = None


class NextClearFilters(Model):
    """Clear the filters of a sheet's view (the sheet of the job when left out)."""

    type: Literal["clear_filters"]
    sheet_id: str | None = None
    label: str | None = None


Next = Annotated[
    NextId | NextUrl | NextDownload | NextFiles | NextSnapshot | NextView | NextRetry | NextWait | NextClearFilters,
    Field(discriminator="type"),
]


class OutcomeTrigger(Model):
    """Whether the `next` button waits for a click or fires by itself."""

    type: Literal["manual", "automatic", "automatic_silent"] = "manual"


class Outcome(Model):
    """What the person sees when a job ends: a message and, optionally, what to do next."""

    message: str | None = None
    heading: str | None = None
    acknowledge: bool = False
    button_text: str | None = None
    hide_default_button: bool = False
    trigger: OutcomeTrigger | None = None
    next: Next | None = None
