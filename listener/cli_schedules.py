"""`listener schedules create | list | pause | resume | delete`: schedules on a server, for an operator.

Wiring only, as cli.py: the commands parse their arguments and call the Client's `schedules`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import datetime

from rich import box
from rich.console import Console
from rich.table import Table

from listener.schedules import Schedule, zone

__all__ = ["add_commands", "run"]


def add_commands(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
                 remote: Callable[[argparse.ArgumentParser], None]) -> None:
    """The `schedules` command and its subcommands, each with the server options `remote` adds."""
    schedules = commands.add_parser("schedules", help="look at and manage cron schedules on a server (admin)")
    sub = schedules.add_subparsers(dest="schedules_command", required=True)
    create = sub.add_parser("create", help="create a job at each tick of a cron expression (admin)")
    create.add_argument("job", help="domain:operation, e.g. workbook:export")
    create.add_argument("cron", help="five cron fields, quoted (e.g. '0 3 * * *'), or @daily, @hourly, ...")
    create.add_argument("--timezone", default="UTC", help="an IANA time zone, e.g. Europe/Berlin (default UTC)")
    create.add_argument("--input", type=json.loads, default=None, help="each job's input as a JSON object")
    create.add_argument("--source", help="the id of the object each job works on")
    create.add_argument("--paused", action="store_true", help="create it paused (resume starts it)")
    sub.add_parser("list", help="list schedules with their next run times")
    for name, text in (("pause", "stop making jobs until resumed (admin)"),
                       ("resume", "make jobs again from the next tick (admin)"),
                       ("delete", "delete a schedule; its jobs are kept (admin)")):
        sub.add_parser(name, help=text).add_argument("schedule_id")
    for parser in sub.choices.values():
        remote(parser)
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


async def run(args: argparse.Namespace, urls: Sequence[str]) -> None:
    """Run one `schedules` subcommand against the server at `urls`."""
    from listener.client import Client

    console = Console() if Console().is_terminal else Console(width=200)
    async with Client(urls, token=args.token) as client:
        command = args.schedules_command
        if command == "list":
            _show(console, await client.schedules.list(), args.json, listing=True)
            return
        if command == "delete":
            await client.schedules.delete(args.schedule_id)
            print(json.dumps({"deleted": args.schedule_id}) if args.json else f"Deleted schedule {args.schedule_id}.")
            return
        if command == "create":
            schedule = await client.schedules.create(job=args.job, cron=args.cron, timezone=args.timezone,
                                                     input=args.input, source=args.source, paused=args.paused)
        elif command == "pause":
            schedule = await client.schedules.pause(args.schedule_id)
        else:
            schedule = await client.schedules.resume(args.schedule_id)
        _show(console, [schedule], args.json, listing=False)


def _local(instant: datetime | None, timezone: str) -> str:
    """An instant as the schedule's wall clock reads it, with the zone's abbreviation (CET, CEST)."""
    if instant is None:
        return "—"
    return instant.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _show(console: Console, schedules: Sequence[Schedule], as_json: bool, *, listing: bool) -> None:
    if as_json:
        if listing:
            print(json.dumps({"items": [s.model_dump(mode="json") for s in schedules]}, indent=2))
        else:
            print(schedules[0].model_dump_json(indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("id", "job", "cron", "when", "next run", "status", "last run"):
        table.add_column(name, no_wrap=name in ("id", "job", "cron", "next run"), overflow="fold")
    for s in schedules:
        status = "paused" if s.paused else "active"
        last = _local(s.last_run_at, s.timezone) + (f" ({s.last_error})" if s.last_error else "")
        table.add_row(s.id, s.job, s.cron, f"{s.description} ({s.timezone})", _local(s.next_run_at, s.timezone),
                      status, last)
    console.print(table)
    if listing:
        console.print(f"{len(schedules)} schedule(s)")
