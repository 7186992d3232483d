"""Other systems' status words: what each stands for, how several combine, and fiddlerStatus agreeing with them."""

from __future__ import annotations

import itertools

import pytest

from listener import status_words
from listener.status_words import StatusFilter, resolve

STATUSES = ("created", "planning", "scheduled", "ready", "executing", "complete", "failed", "cancelled")
# Every kind of job the words tell apart: its status, attempts made and error kind.
JOBS = [(s, attempt, kind) for s in STATUSES for attempt in (0, 1, 2) for kind in (None, "error", "timeout")
        if not (s == "failed" and kind is None)]


def lists(f: StatusFilter, status: str, attempt: int, kind: str | None) -> bool:
    """What a store's query does with the filter (store/reads.py status_terms), on one job."""
    detail = status_words.status_detail(status, attempt, kind)
    return status in f.statuses or detail in f.details or (status in f.undetailed and detail is None)


def test_each_word_in_any_case() -> None:
    assert resolve(["SUCCESS"]) == resolve(["success"]) == resolve(["Success"]) == resolve(["completed"]) \
        == resolve(["complete"]) == StatusFilter(statuses=("complete",))
    assert resolve(["TIMEOUT"]) == StatusFilter(details=("timeout",))
    assert resolve(["RETRY"]) == StatusFilter(details=("retry",))
    assert resolve(["pending"]) == resolve(["PENDING"]) == StatusFilter(("created", "planning", "ready"), (),
                                                                        ("scheduled",))
    assert resolve(["processing"]) == resolve(["STARTED"]) == StatusFilter(statuses=("executing",))
    assert resolve(["FAILURE"]) == resolve(["failed"]) == StatusFilter(statuses=("failed",))
    assert resolve(["REVOKED"]) == StatusFilter(statuses=("cancelled",))
    assert resolve([]) == StatusFilter()


def test_several_words_are_any_of_them_asked_once() -> None:
    assert resolve(["pending", "RETRY"]) == StatusFilter(statuses=("created", "planning", "scheduled", "ready"))
    assert resolve(["FAILURE", "TIMEOUT"]) == StatusFilter(statuses=("failed",)), "a timeout is a failure"
    assert resolve(["scheduled", "RETRY"]) == StatusFilter(statuses=("scheduled",))
    assert resolve(["TIMEOUT", "RETRY", "SUCCESS"]) == StatusFilter(("complete",), ("retry", "timeout"))


@pytest.mark.parametrize("bad", ["done", "", " failed", "failed ", "SUCCEEDED", "REVO\u212aED", "pend"])
def test_an_unknown_word_names_the_accepted_ones(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not a status; use one of: created, .* TIMEOUT \(Zoltar\); in any case"):
        status_words.word(bad)


def test_fiddler_status_is_the_fiddler_word_whose_listing_holds_the_job() -> None:
    fiddler = ("PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED")
    for status, attempt, kind in JOBS:
        word = status_words.fiddler_status(status, attempt)
        holding = [w for w in fiddler if lists(resolve([w]), status, attempt, kind)]
        assert holding == [word], (status, attempt, kind)  # exactly one: Fiddler's words split the jobs
    # Cocoa Canvas's four and our cancelled split them too, with RETRY among its pending.
    for status, attempt, kind in JOBS:
        cocoa = [w for w in ("pending", "processing", "completed", "failed", "cancelled")
                 if lists(resolve([w, "RETRY"] if w == "pending" else [w]), status, attempt, kind)]
        assert len(cocoa) == 1, (status, attempt, kind)


def test_combining_words_lists_the_union_of_their_jobs() -> None:
    words = [w.word for w in status_words.WORDS.values()]
    for pair in itertools.combinations(words, 2):
        for job in JOBS:
            assert lists(resolve(pair), *job) == any(lists(resolve([w]), *job) for w in pair), (pair, job)
