"""The `listener` command: parses arguments, builds objects, calls library functions.

Every option also reads a `LISTENER_*` environment variable (shown in --help).
Errors print one line (the chain of causes with --debug) and exit non-zero.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup
from rich import box
from rich.console import Console
from rich.table import Table

from listener import __version__, cli_schedules, logs, webhook_commands
from listener.errors import ListenerError
from listener.models import Job
from listener.platform import DEFAULT_DB, Platform
from listener.platform.auth import Role, Users
from listener.process import event_loop, loop_options, tune_gc
from listener.targets import load_listener
from listener.user_commands import users_command

__all__ = ["load_listener", "main"]

DEFAULT_URL = "http://127.0.0.1:8080"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"LISTENER_{name}", default)


def _option(parser: argparse.ArgumentParser, flag: str, env: str, help: str, default: Any = None,
            type: Callable[[str], Any] = str) -> None:
    value = _env(env)
    parser.add_argument(flag, default=type(value) if value is not None else default, type=type,
                        help=f"{help} (env LISTENER_{env}; default {default})")


def _db(parser: argparse.ArgumentParser) -> None:
    _option(parser, "--db", "DB", "database URL", DEFAULT_DB)


def _remote(parser: argparse.ArgumentParser) -> None:
    _option(parser, "--url", "URL", "server URL; repeat or separate with commas for replicas", DEFAULT_URL)
    _option(parser, "--token", "TOKEN", "bearer token", None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="listener", description="Long-running jobs driven by events.")
    parser.add_argument("--version", action="version", version=f"listener {__version__}")
    parser.add_argument("--debug", action="store_true", default=_env("DEBUG") == "1",
                        help="show the full chain of causes on errors (env LISTENER_DEBUG=1)")
    # The default stays a string so that argparse vets it with `type`, and a bad env var is one clear line.
    parser.add_argument("--log-format", choices=["text", "json"], default=_env("LOG_FORMAT", "text"),
                        type=_log_format, help="log lines as text, or as one JSON object per line "
                        "(env LISTENER_LOG_FORMAT; default text)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the platform as a server: REST API, event stream and web page")
    _db(serve)
    _option(serve, "--host", "HOST", "address to listen on", "127.0.0.1")
    _option(serve, "--port", "PORT", "port to listen on", 8080, int)
    _option(serve, "--max-body", "MAX_BODY", "largest request body in bytes", 1024 * 1024, int)
    _option(serve, "--pool-size", "POOL_SIZE", "PostgreSQL connections of this replica", 10, int)
    _option(serve, "--max-file-size", "MAX_FILE_SIZE", "largest uploaded file in bytes", 100 * 1024 * 1024, int)
    _option(serve, "--files-dir", "FILES_DIR", "directory for uploaded files' bytes (default: beside a SQLite "
            "database; in PostgreSQL large objects)", None)

    run = commands.add_parser("run", help="serve a listener from a module against a server")
    run.add_argument("target", help="path/to/module.py[:name] or package.module[:name]")
    _remote(run)
    _option(run, "--agent", "AGENT", "agent name: its cursor says where to resume", None)
    _option(run, "--concurrency", "CONCURRENCY", "events handled at once", 10, int)
    _option(run, "--grace", "GRACE", "seconds running handlers get to finish on SIGTERM", 10.0, float)

    dev = commands.add_parser("dev", help="platform, server and a listener in one process, for development")
    dev.add_argument("target", help="path/to/module.py[:name] or package.module[:name]")
    _db(dev)
    _option(dev, "--port", "PORT", "port to listen on", 8080, int)
    dev.add_argument("--no-reload", action="store_true", default=_env("NO_RELOAD") == "1",
                     help="do not load the module again when its file changes (env LISTENER_NO_RELOAD=1)")

    demo = commands.add_parser("demo", help="run the example listeners on the embedded platform, with live progress")
    _db(demo)

    users = commands.add_parser("users", help="manage users (directly on the database)")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    create = users_commands.add_parser("create", help="create a user and print its token once")
    create.add_argument("name")
    create.add_argument("--role", choices=[r.value for r in Role], default="member")
    users_commands.add_parser("list", help="list users: name, role, created, and whether its token was rotated or "
                              "revoked").add_argument("--json", action="store_true", help="print JSON")
    revoke = users_commands.add_parser("revoke", help="revoke a user's token (not the last admin's): refused at once")
    revoke.add_argument("name")
    revoke.add_argument("--json", action="store_true", help="print the user as JSON")
    rotate = users_commands.add_parser("rotate", help="give a user a new token, printed once; the old one is refused")
    rotate.add_argument("name")
    rotate.add_argument("--json", action="store_true", help='print {"user", "token"} as JSON')
    for sub in (create, rotate):
        sub.add_argument("--token-only", action="store_true",
                         help="print only the token, for a script: TOKEN=$(listener users create ... --token-only)")
    for sub in users_commands.choices.values():
        _db(sub)

    prune = commands.add_parser("prune", help="delete finished jobs older than an age, with their events")
    _db(prune)
    prune.add_argument("--older-than", type=duration, required=True, metavar="AGE",
                       help="e.g. 30d, 12h, 90m or 3600s")
    prune.add_argument("--json", action="store_true", help='print {"deleted": N} instead of a sentence')

    jobs = commands.add_parser("jobs", help="look at and manage jobs on a server")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_commands.add_parser("list", help="list jobs, newest first")
    _filters(listing)
    listing.add_argument("--sort", choices=["created", "-created", "started", "-started", "ended", "-ended",
                                            "duration", "-duration"],
                         help="order by creation (default -created: newest first), start, end or duration; - for "
                              "the largest first (by start, end or duration: only the jobs that have one)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    created = jobs_commands.add_parser("create", help="create a job")
    created.add_argument("job", help="type:operation, e.g. workbook:export or voters:geocode")
    created.add_argument("--source", help="the id of the object the job works on")
    created.add_argument("--manual", action="store_true", help="wait for `execute` instead of starting at once")
    created.add_argument("--input", type=json.loads, default=None, help="the job's input as a JSON object")
    created.add_argument("--dedupe-key", metavar="KEY",
                         help="while a job of this type waits with KEY (not started), return it, not a new one")
    created.add_argument("--debounce", type=float, metavar="SECONDS",
                         help="with --dedupe-key: give the waiting job this input and start it SECONDS from now")
    created.add_argument("--priority", type=int, help="higher runs first, -1000 to 1000 (default: the type's, or 0)")
    created.add_argument("--concurrency-key", metavar="KEY",
                         help="what the type's per-key limits count the job by, e.g. tenant:42")
    configure = jobs_commands.add_parser("configure", help="set the limits and default timeout of a job type (admin)")
    configure.add_argument("job", help="domain:operation, e.g. workbook:export")
    configure.add_argument("--max-running", type=int, help="at most this many running at once (1: one at a time)")
    configure.add_argument("--starts-per-second", type=float, help="at most this many starts a second")
    configure.add_argument("--max-running-per-key", type=int, metavar="N",
                           help="at most this many running at once per concurrency key")
    configure.add_argument("--starts-per-second-per-key", type=float, metavar="RATE",
                           help="at most this many starts a second per concurrency key")
    configure.add_argument("--priority", type=int, help="the priority of jobs created without one")
    configure.add_argument("--timeout", type=int, metavar="SECONDS", help="timeout of jobs created without one")
    configure.add_argument("--max-lease-expirations", type=int, metavar="N",
                           help="how often a job goes back to ready when its worker dies, before it fails (default 3)")
    waiting = jobs_commands.add_parser("wait", help="wait until a job has ended and show it")
    waiting.add_argument("job_id")
    waiting.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                         help="give up after this long: exit 1 saying where the job stood")
    for name, text in (("get", "show one job"), ("ack-outcome", "acknowledge a finished job's outcome")):
        sub = jobs_commands.add_parser(name, help=text)
        sub.add_argument("job_id")
    for name, text in (("cancel", "cancel a job that has not ended, or every job matching the filters (admin)"),
                       ("retry", "run a failed job again (one more attempt), or every job matching the filters "
                                 "(admin)")):
        sub = jobs_commands.add_parser(name, help=text, description=f"{text}. With filters instead of an id, it "
                                       "counts the jobs they match, asks to confirm that number and moves them in "
                                       "one bulk call (at most 1,000), each through its own move.")
        sub.add_argument("job_id", nargs="?", help="the job; leave it out to move every job matching the filters")
        _filters(sub)
        sub.add_argument("--yes", action="store_true", help="do not ask to confirm the count of a bulk move")
        if name == "retry":
            sub.add_argument("--failed-items", action="store_true",
                             help="with an id: a new job for only the items its error log names (its retryOf)")
    for sub in jobs_commands.choices.values():
        _remote(sub)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cli_schedules.add_commands(commands, _remote)
    webhook_commands.add_commands(commands, _remote)
    return parser


def _filters(parser: argparse.ArgumentParser) -> None:
    """The listing's filters, as `jobs list` and the bulk moves take them."""
    parser.add_argument("--status", action="append",
                        help="only jobs in this status, or another system's word for it, in any case: Fiddler's "
                             "PENDING, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, Cocoa Canvas's pending, "
                             "processing, completed, failed, Zoltar's TIMEOUT (repeatable, or comma-separated)")
    parser.add_argument("--type", action="append",
                        help="only jobs of this type, e.g. workbook or voters (repeatable, or comma-separated)")
    parser.add_argument("--operation", action="append", help="only jobs of this operation (repeatable)")
    parser.add_argument("--parent", metavar="JOB_ID", help="the parts of this split job, in part order")
    parser.add_argument("--top-level", action="store_true", help="leave the parts of split jobs out")
    parser.add_argument("--created-by", metavar="USER", help="only jobs this user started")
    parser.add_argument("--search", metavar="TEXT",
                        help="a job id or its start (jb_0193...), else text of the info or error message")
    parser.add_argument("--metadata", action="append", metavar="KEY=VALUE",
                        help="only jobs whose metadata has this key with this value (repeatable: all must match)")


def _filter_values(args: argparse.Namespace) -> dict[str, Any]:
    """The filters given on the command line, as `jobs.list` and a bulk move's filter take them."""
    return {"status": _split(args.status), "type": _split(args.type), "operation": args.operation,
            "parent_id": args.parent, "is_part": False if args.top_level else None, "created_by": args.created_by,
            "search": args.search, "metadata": args.metadata}


def _log_format(text: str) -> logs.LogFormat:
    # argparse checks `choices` on the command line only; this also checks LISTENER_LOG_FORMAT.
    if text in ("text", "json"):
        return cast(logs.LogFormat, text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a log format: text or json")


def duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m` or `3600s` as a timedelta."""
    units = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30d, 12h, 90m or 3600s")
    return timedelta(seconds=int(number) * units[unit])


# -- commands ---------------------------------------------------------------------


async def _until_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logging.getLogger("listener").info("Got %s: shutting down gracefully.", signal.Signals(signum).name)
            scope.cancel()
            return


async def _listen(tg: TaskGroup, serving: Callable[..., Coroutine[Any, Any, None]], host: str, port: int) -> int:
    """Start the server in `tg` and return its bound port; a port already taken is one clear line, not a trace."""
    try:
        bound: int = await tg.start(serving)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ListenerError(f"Port {port} on {host} is already in use: stop what listens there, or choose another "
                            "with --port (env LISTENER_PORT).") from exc
    return bound


async def _serve(args: argparse.Namespace) -> None:
    from listener.platform.server import serve

    async with Platform.open(args.db, pool_size=args.pool_size, max_file_size=args.max_file_size,
                             files_dir=args.files_dir) as platform, anyio.create_task_group() as tg:
        users = Users(platform.store, platform.clock)
        token = await users.ensure_admin(_env("ADMIN_TOKEN"))
        if token is not None and not _env("ADMIN_TOKEN"):
            print(f"Created the admin user. Its token, shown only this once:\n\n    {token}\n", flush=True)
        tg.start_soon(_until_signal, tg.cancel_scope)
        port = await _listen(tg, functools.partial(serve, platform, host=args.host, port=args.port, users=users,
                                                   max_body=args.max_body), args.host, args.port)
        print(f"Listener is serving http://{args.host}:{port}/api/v1 on {args.db}\n"
              f"Web page: http://{args.host}:{port}/\nAPI docs: http://{args.host}:{port}/api/docs", flush=True)


async def _run(args: argparse.Namespace) -> None:
    from listener.client import Client, run_listener

    listener = load_listener(args.target)
    agent = args.agent or listener.name or "default"
    async with Client(_urls(args.url), token=args.token) as client, anyio.create_task_group() as tg:
        tg.start_soon(_until_signal, tg.cancel_scope)
        await tg.start(functools.partial(run_listener, client, listener, agent=agent, concurrency=args.concurrency,
                                         grace=args.grace))
        print(f"Agent {agent!r} is listening to {args.url}", flush=True)


async def _dev(args: argparse.Namespace) -> None:
    from listener.dev import dev_admin, running
    from listener.platform.server import serve

    listener = load_listener(args.target)  # a module that does not load stops here, before the database opens
    async with Platform.open(args.db) as platform, anyio.create_task_group() as tg:
        users = Users(platform.store, platform.clock)
        token = await dev_admin(users, args.db)
        tg.start_soon(_until_signal, tg.cancel_scope)
        port = await _listen(tg, functools.partial(serve, platform, port=args.port, users=users), "127.0.0.1",
                             args.port)
        await tg.start(functools.partial(running, platform, args.target, listener, reload=not args.no_reload))
        print(f"Listener dev server: http://127.0.0.1:{port}/api/v1\nToken: {token}\n"
              f"Web page: http://127.0.0.1:{port}/ (sign in with the token)\n"
              f"API docs: http://127.0.0.1:{port}/api/docs", flush=True)


async def _demo(args: argparse.Namespace) -> None:
    from listener.demo import run_demo

    await run_demo(args.db)


async def _prune(args: argparse.Namespace) -> None:
    # A one-off command: the system agent is left to the servers (it would claim jobs and quit).
    async with Platform.open(args.db, sweep_interval=None, retention=None, system_jobs=False) as platform:
        pruned = await platform.api.as_actor("cli").jobs.prune(args.older_than)
        if args.json:
            print(json.dumps({"deleted": pruned}))
        else:
            print(f"Deleted {pruned} finished job(s) older than {args.older_than}, with their events.")


def _urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]


def _show(console: Console, jobs: Sequence[Job], as_json: bool, total: int | None = None) -> None:
    if as_json:
        if total is None and len(jobs) == 1:
            print(jobs[0].model_dump_json(indent=2))
        else:
            print(json.dumps({"items": [j.model_dump(mode="json") for j in jobs], "total": total}, indent=2))
        return
    console.print(_table(jobs, console.width))
    if total is not None:
        console.print(f"{len(jobs)} of {total} job(s)")


# Shown whole, however narrow the terminal: an id is what a person copies into the next command.
_WHOLE = ("id", "job", "status", "progress")
# Left out where the terminal is too narrow for them, the last first (`jobs get --json` shows everything).
_OPTIONAL = ("outcome / error", "info", "priority", "created", "created by")
_FOLDED = 12  # an optional column is shown if this much of it fits; longer text folds onto more lines


def _table(jobs: Sequence[Job], width: int) -> Table:
    cells = {
        "id": [job.id for job in jobs],
        "job": [job.job for job in jobs],
        "status": [job.status.value for job in jobs],
        "progress": [f"{job.progress}%" for job in jobs],
        "priority": [str(job.priority) for job in jobs],
        "info": [job.info or "" for job in jobs],
        "created by": [job.created_by or "" for job in jobs],
        "created": [job.created_at.strftime("%Y-%m-%d %H:%M:%S") for job in jobs],
        "outcome / error": [job.error_message or (job.outcome.message if job.outcome else "") or "" for job in jobs],
    }

    def room(name: str) -> int:  # its text and a space either side (the table draws no lines between columns)
        longest = max([len(name), *map(len, cells[name])])
        return (longest if name in _WHOLE else min(longest, _FOLDED)) + 2

    left = width - sum(map(room, _WHOLE))
    shown = set(_WHOLE)
    for name in _OPTIONAL:
        if room(name) <= left:
            shown.add(name)
            left -= room(name)
    table = Table(box=box.SIMPLE_HEAD)
    for name in cells:
        if name in shown:
            whole = name in _WHOLE
            table.add_column(name, no_wrap=whole, min_width=room(name) - 2 if whole else None, overflow="fold")
    for row in zip(*(cells[name] for name in cells if name in shown), strict=True):
        table.add_row(*row)
    return table


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated options and comma-separated values, as `?status=failed,RETRY` reads them."""
    return None if values is None else [part for value in values for part in value.split(",")]


async def _jobs(args: argparse.Namespace) -> None:
    from listener.client import Client

    console = Console()
    if not console.is_terminal:
        # Piped output is read by people with grep or a pager: do not squeeze the table to 80 columns.
        console = Console(width=200)
    async with Client(_urls(args.url), token=args.token) as client:
        command = args.jobs_command
        if command == "list":
            page = await client.jobs.list(**_filter_values(args), sort=args.sort, limit=args.limit,
                                          offset=args.offset)
            _show(console, page.items, args.json, page.total)
            return
        if command == "retry" and args.failed_items and args.job_id is None:
            raise ListenerError("jobs retry --failed-items takes the id of the job whose failed items to run again.")
        if command in ("cancel", "retry") and args.job_id is None:
            from listener.bulkcli import bulk_move

            await bulk_move(client, command, _filter_values(args), yes=args.yes, as_json=args.json, console=console)
            return
        if command in ("cancel", "retry") and any(v not in (None, [], False) for v in _filter_values(args).values()):
            raise ListenerError(f"jobs {command} takes a job id or filters, not both: leave the id out to {command} "
                                "every job the filters match.")
        if command == "configure":
            settings = await client.jobs.configure(args.job, max_running=args.max_running,
                                                   starts_per_second=args.starts_per_second,
                                                   timeout_seconds=args.timeout,
                                                   max_lease_expirations=args.max_lease_expirations,
                                                   priority=args.priority,
                                                   max_running_per_key=args.max_running_per_key,
                                                   starts_per_second_per_key=args.starts_per_second_per_key)
            console.print_json(settings.model_dump_json()) if args.json else console.print(
                f"{settings.job}: at most {settings.max_running or 'any number of'} running, "
                f"{settings.starts_per_second or 'any number of'} starts a second, "
                f"timeout {settings.timeout_seconds or 'the default'}"
                f"{'s' if settings.timeout_seconds else ''}.", highlight=False)
            return
        if command == "create":
            domain, _, operation = args.job.partition(":")
            job = await client.jobs.create(type=domain, operation=operation, source=args.source,
                                           trigger="manual" if args.manual else "immediate", input=args.input,
                                           dedupe_key=args.dedupe_key, debounce_seconds=args.debounce,
                                           priority=args.priority, concurrency_key=args.concurrency_key)
            if job.dedupe is not None:
                if args.json:  # as the REST answer says it
                    print(json.dumps({**job.model_dump(mode="json"), "dedupe": job.dedupe}, indent=2))
                    return
                console.print(f"{job.dedupe.capitalize()}: {job.id}.", highlight=False)
        elif command == "get":
            job = await client.jobs.get(args.job_id)
        elif command == "cancel":
            job = await client.jobs.cancel(args.job_id)
        elif command == "retry":
            job = await (client.jobs.retry_failed_items if args.failed_items else client.jobs.retry)(args.job_id)
        elif command == "wait":
            from listener.progress import wait_showing

            # The bar is for a person at a terminal; --json and piped output get the job alone, when it ends.
            job = await wait_showing(client, args.job_id, timeout=args.timeout, console=console, bar=not args.json)
        else:
            job = await client.jobs.acknowledge_outcome(args.job_id)
        _show(console, [job], args.json)


_COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[None]]] = {
    "serve": _serve, "run": _run, "dev": _dev, "demo": _demo, "users": users_command, "jobs": _jobs, "prune": _prune,
    "schedules": lambda args: cli_schedules.run(args, _urls(args.url)),
    "webhooks": lambda args: webhook_commands.webhooks(args, _urls(args.url)),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `listener` command; returns the exit status."""
    args = _parser().parse_args(argv)
    quiet = args.command not in ("serve", "run", "dev")
    level = logging.DEBUG if args.debug else logging.WARNING if quiet else logging.INFO
    logs.configure(args.log_format, level)
    try:
        options = loop_options()
    except ValueError as exc:
        print(f"listener: {exc}", file=sys.stderr)
        return 2
    if args.command in ("serve", "run", "dev", "demo"):
        tune_gc()
        logging.getLogger("listener").info("Event loop: %s.", event_loop())
    try:
        anyio.run(functools.partial(_COMMANDS[args.command], args), backend_options=options)
    except KeyboardInterrupt:
        return 130
    except Exception as raised:
        if args.debug:
            raise
        error = _alone(raised)
        if not isinstance(error, ListenerError | ConnectionError | TimeoutError):
            print(f"listener: {type(error).__name__}: {error} (run with --debug for details)", file=sys.stderr)
            return 1
        message = error.message if isinstance(error, ListenerError) else (str(error) or type(error).__name__)
        print(f"listener: {message}", file=sys.stderr)
        details = getattr(error, "details", None)
        if details:
            print(json.dumps(details, default=str), file=sys.stderr)
        return 1
    return 0


def _alone(exc: Exception) -> Exception:
    """The one error inside task groups' exception groups: what went wrong, not where it was gathered."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
