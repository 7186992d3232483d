"""`listener jobs cancel|retry` with the listing's filters: count the jobs, confirm the number, one bulk call.

Wiring, as cli.py is: the count is the listing's total, the confirmation is that number sent back as
`expectedCount`, and the server refuses the move if another number of jobs matches by then.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from listener.client import Client
from listener.errors import Invalid
from listener.models import MAX_BULK, JobFilter, metadata_terms, parse

__all__ = ["bulk_move"]

_VERBS = {"cancel": ("Cancel", "cancelled"), "retry": ("Retry", "retried")}


async def bulk_move(client: Client, action: str, filters: dict[str, Any], *, yes: bool, as_json: bool,
                    console: Console) -> None:
    """Move every job matching `filters` (as `_filter_values` gives them) after confirming their count."""
    given = {k: v for k, v in filters.items() if v not in (None, [], False)}
    if not given:
        raise Invalid(f"job_id: name the job to {action}, or give filters (--status, --type, --search, ...) to "
                      f"{action} every job they match.", details=[{"field": "job_id", "message": "missing"}])
    given["metadata"] = metadata_terms(given.get("metadata"))
    spec = parse(JobFilter, given, what="filters")
    total = (await client.jobs.list(**given, limit=1)).total
    verb, done = _VERBS[action]
    if total == 0:
        _say(console, as_json, {"action": action, "matched": 0, "changed": 0, "changedIds": [], "refused": []},
             f"No jobs match these filters: nothing to {action}.")
        return
    if total > MAX_BULK:
        raise Invalid(f"filter: {total:,} jobs match, and one bulk move takes at most {MAX_BULK:,}: narrow the "
                      "filters and move them in parts.", details=[{"field": "filter", "message": "too many jobs"}])
    if not yes:
        if not sys.stdin.isatty():
            raise Invalid(f"--yes: {total:,} job(s) match; confirm with --yes to {action} them without a terminal.",
                          details=[{"field": "--yes", "message": "confirmation needed"}])
        print(f"{total:,} job(s) match these filters. {verb} them? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("Nothing was moved.", file=sys.stderr)
            return
    result = await client.jobs.bulk(action, filter=spec, expected_count=total)
    lines = [f"{done.capitalize()} {result.changed:,} of {result.matched:,} job(s)."]
    lines += [f"  {r.id}: {r.message}" for r in result.refused]
    _say(console, as_json, json.loads(result.model_dump_json()), "\n".join(lines))


def _say(console: Console, as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        console.print(text, highlight=False)
