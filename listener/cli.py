"""The `listener` command: parses arguments, builds objects, calls library functions."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

import anyio

from listener.errors import ListenerError
from listener.platform import DEFAULT_DB, Platform

__all__ = ["main"]


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"LISTENER_{name}", default)


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=_env("DB", None),
                        help=f"database URL (env LISTENER_DB; default {DEFAULT_DB})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="listener", description="Long-running jobs driven by events.")
    parser.add_argument("--debug", action="store_true", default=_env("DEBUG", "") == "1",
                        help="show the full chain of causes on errors (env LISTENER_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the example listeners on the embedded platform, with live progress")
    _db_option(demo)

    jobs = commands.add_parser("jobs", help="look at and manage jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_commands.add_parser("list", help="list jobs, newest first")
    _db_option(listing)
    listing.add_argument("--status", action="append", help="only jobs in this status (repeatable)")
    listing.add_argument("--type", action="append", help="only jobs of this type, e.g. workbook (repeatable)")
    listing.add_argument("--operation", action="append", help="only jobs of this operation (repeatable)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    for name, text in (("get", "show one job as JSON"), ("cancel", "cancel a job that has not ended")):
        sub = jobs_commands.add_parser(name, help=text)
        _db_option(sub)
        sub.add_argument("job_id")
    return parser


async def _jobs(args: argparse.Namespace) -> None:
    async with Platform.open(args.db) as platform:
        api = platform.api.as_actor("cli")
        if args.jobs_command == "list":
            page = await api.jobs.list(status=args.status, type=args.type, operation=args.operation,
                                       limit=args.limit, offset=args.offset)
            for job in page.items:
                print(f"{job.id}  {job.job:<32} {job.status.value:<10} {job.progress:>3}%  {job.info or ''}")
            print(f"{len(page.items)} of {page.total} job(s)")
        elif args.jobs_command == "get":
            print((await api.jobs.get(args.job_id)).model_dump_json(indent=2))
        else:
            job = await api.jobs.cancel(args.job_id)
            print(f"{job.id} is {job.status.value}")


async def _demo(args: argparse.Namespace) -> None:
    from listener.demo import run_demo

    await run_demo(args.db)


_COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[None]]] = {"demo": _demo, "jobs": _jobs}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `listener` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        anyio.run(functools.partial(_COMMANDS[args.command], args))
    except KeyboardInterrupt:
        return 130
    except ListenerError as exc:
        if args.debug:
            raise
        print(f"listener: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, default=str), file=sys.stderr)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print(f"listener: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
