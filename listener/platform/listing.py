"""The jobs grid's reads: a listing's filters as the store's JobQuery, and the counts of its status tabs.

The part of JobService (jobs.py) that `jobs.list`, `jobs.counts` and bulk moves by filter share; it holds
no state of its own. What each filter costs is the store's (reads.py): statuses, types, operations, the
creator and parts are ranges of indexes; an id or the start of one is a range of the ids; text and
metadata read each job's document, so they look through the newest SEARCH_WINDOW jobs that match the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from listener import status_words
from listener.jobcalls import metadata_pair, metadata_terms
from listener.models import SEARCH_WINDOW, JobCounts, JobCountsQuery, JobFilter, JobStatus, parse
from listener.platform.moves import as_list
from listener.platform.store.base import JobQuery, Store

__all__ = ["ID_SEARCH", "ListingMixin", "metadata_terms", "store_query"]

ID_SEARCH = re.compile(r"^jb_[0-9a-f]{0,23}$")
"""A search that is a job id, or the start of one: a range of the ids, not a text search."""


def store_query(query: JobFilter, *, sort: str | None = None, limit: int = 50, offset: int = 0) -> JobQuery:
    """The store's JobQuery for a validated filter: status words resolved, the search read as an id or as text."""
    words = status_words.resolve(query.status)
    search = query.search.strip() if query.search is not None else ""
    prefix = search if ID_SEARCH.match(search) else None
    return JobQuery([JobStatus(s) for s in words.statuses], query.type, query.operation, query.created_by,
                    query.parent_id, query.is_part, limit, offset, words.details,
                    [JobStatus(s) for s in words.undetailed], id_prefix=prefix,
                    text=search if search and prefix is None else None,
                    metadata=[metadata_pair(t) for t in query.metadata], sort=sort, window=SEARCH_WINDOW)


class ListingMixin:
    """jobs.counts: how many jobs each status tab holds."""

    _store: Store

    async def counts(
        self,
        *,
        type: str | Sequence[str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        is_part: bool | None = None,
    ) -> JobCounts:
        """How many jobs there are in each status (and in all), of these types, operations and creator.

        Read from the status indexes, whatever the number of jobs; `is_part=False` leaves parts out.
        """
        query = parse(JobCountsQuery, {"type": as_list(type), "operation": as_list(operation),
                                       "created_by": created_by, "is_part": is_part}, what="count query")
        return await self.counts_of(query)

    async def counts_of(self, query: JobCountsQuery) -> JobCounts:
        """`counts` for a validated query."""
        found = await self._store.count_statuses(JobQuery(type=query.type, operation=query.operation,
                                                          created_by=query.created_by, is_part=query.is_part))
        return JobCounts(**{s.value: n for s, n in found.items()}, total=sum(found.values()))
