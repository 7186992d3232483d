"""Other systems' words for a job's status (DESIGN.md §2): what listings take, and a job's `fiddlerStatus`.

A job is in one of Listener's eight statuses. People coming from Cocoa Canvas, Fiddler or Zoltar
type their own words, so `jobs.list(status=...)`, `?status=`, `listener jobs list --status` and the
web page take those too, in any case. Each word stands for some of the jobs:

- whole statuses: `SUCCESS` is every `complete` job, `pending` every job not started yet;
- a status narrowed by its *detail*, a fact stored beside the status: `RETRY` is a `scheduled` job
  waiting for its next attempt after one failed (attempt >= 1), `TIMEOUT` a `failed` job whose
  error kind is `timeout`;
- a status without a detail: `pending` takes the `scheduled` jobs that are not a retry.

So Fiddler's words split the jobs as Fiddler does (a job is PENDING or RETRY, never both), Cocoa
Canvas's `pending` is the same word (it has no automatic retries; `pending,retry` is every job
not started), and a job's `fiddlerStatus` is the Fiddler word whose listing holds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DETAILS", "WORDS", "StatusFilter", "Word", "accepted", "fiddler_status",
           "resolve", "status_detail", "word"]

RETRY = "retry"
TIMEOUT = "timeout"
DETAILS: dict[str, str] = {RETRY: "scheduled", TIMEOUT: "failed"}
"""Each detail and the status it comes with."""

_OURS = ("created", "planning", "scheduled", "ready", "executing", "complete", "failed", "cancelled")
_NOT_STARTED = ("created", "planning", "ready")


@dataclass(frozen=True, slots=True)
class Word:
    """A status word as its system writes it, and the jobs it stands for."""

    word: str
    system: str
    statuses: tuple[str, ...] = ()
    """Jobs in these statuses, whatever their detail."""
    details: tuple[str, ...] = ()
    """Jobs with this detail (each implies its status, DETAILS)."""
    undetailed: tuple[str, ...] = ()
    """Jobs in these statuses that have no detail."""


_WORDS = [
    *(Word(s, "Listener", statuses=(s,)) for s in _OURS),
    Word("pending", "Cocoa Canvas", statuses=_NOT_STARTED, undetailed=("scheduled",)),
    Word("processing", "Cocoa Canvas", statuses=("executing",)),
    Word("completed", "Cocoa Canvas", statuses=("complete",)),
    Word("PENDING", "Fiddler", statuses=_NOT_STARTED, undetailed=("scheduled",)),
    Word("STARTED", "Fiddler", statuses=("executing",)),
    Word("SUCCESS", "Fiddler", statuses=("complete",)),
    Word("FAILURE", "Fiddler", statuses=("failed",)),
    Word("RETRY", "Fiddler", details=(RETRY,)),
    Word("REVOKED", "Fiddler", statuses=("cancelled",)),
    Word("TIMEOUT", "Zoltar", details=(TIMEOUT,)),
]
WORDS: dict[str, Word] = {}
"""Every accepted word, lowercased (the way `word()` reads it), to its meaning."""
for _w in _WORDS:
    WORDS.setdefault(_w.word.lower(), _w)

_FIDDLER = {"created": "PENDING", "planning": "PENDING", "scheduled": "PENDING", "ready": "PENDING",
            "executing": "STARTED", "complete": "SUCCESS", "failed": "FAILURE", "cancelled": "REVOKED"}


def accepted() -> str:
    """The accepted words, by system, for messages and documentation."""
    systems: dict[str, list[str]] = {}
    for w in _WORDS:
        systems.setdefault(w.system, []).append(w.word)
    return "; ".join(f"{', '.join(words)} ({system})" for system, words in systems.items()) + "; in any case"


def word(text: str) -> str:
    """`text` as an accepted word, lowercased; ValueError naming the accepted ones otherwise."""
    key = text.lower()
    if key not in WORDS or not text.isascii():  # not the Kelvin sign for K, which lowercases to k
        raise ValueError(f"{text!r} is not a status; use one of: {accepted()}")
    return key


def status_detail(status: str, attempt: int, error_kind: str | None) -> str | None:
    """What the stores keep beside a job's status: `retry`, `timeout` or None (DETAILS)."""
    if status == "scheduled" and attempt >= 1:
        return RETRY
    if status == "failed" and error_kind == TIMEOUT:
        return TIMEOUT
    return None


def fiddler_status(status: str, attempt: int) -> str:
    """Fiddler's word for a job: PENDING, STARTED, SUCCESS, FAILURE, RETRY or REVOKED."""
    return "RETRY" if status_detail(status, attempt, None) == RETRY else _FIDDLER[status]


@dataclass(frozen=True, slots=True)
class StatusFilter:
    """What some words ask a store for: jobs in `statuses`, or with one of `details`, or in `undetailed` without one.

    Empty: no filter on status.
    """

    statuses: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    undetailed: tuple[str, ...] = ()


def resolve(words: Iterable[str]) -> StatusFilter:
    """The jobs that any of `words` stands for, each status asked for once, in our order."""
    statuses: set[str] = set()
    details: set[str] = set()
    undetailed: set[str] = set()
    for text in words:
        w = WORDS[word(text)]
        statuses.update(w.statuses)
        details.update(w.details)
        undetailed.update(w.undetailed)
    # A status without a detail and with every detail it comes with is the whole status.
    for status in undetailed & {s for d, s in DETAILS.items() if d in details}:
        if all(d in details for d, s in DETAILS.items() if s == status):
            statuses.add(status)
    return StatusFilter(tuple(s for s in _OURS if s in statuses),
                        tuple(d for d in DETAILS if d in details and DETAILS[d] not in statuses),
                        tuple(s for s in _OURS if s in undetailed and s not in statuses))
