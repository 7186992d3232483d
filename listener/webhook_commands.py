"""`listener webhooks create | list | pause | resume | delete | deliveries`: wiring only, over a Client."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from listener.webhooks import Webhook, WebhookDelivery

__all__ = ["add_commands", "webhooks"]


def add_commands(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
                 remote: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `webhooks ...` to the `listener` command's subcommands; `remote` adds --url and --token."""
    parser = commands.add_parser("webhooks", help="register URLs that get events as signed POSTs (admin)")
    sub = parser.add_subparsers(dest="webhooks_command", required=True)
    create = sub.add_parser("create", help="register a URL for topics and a filter; prints its secret once")
    create.add_argument("target", metavar="URL", help="where to POST the events: an http:// or https:// URL")
    create.add_argument("--topic", action="append", required=True, dest="topics",
                        help="a topic or glob, e.g. job:failed or job:* (repeatable)")
    create.add_argument("--filter", type=json.loads, default=None,
                        help='a filter as Listener.on takes it, as JSON: \'{"job": "workbook:*"}\'')
    create.add_argument("--description", default=None)
    sub.add_parser("list", help="list webhooks and where each stands in the event log")
    for name, text in (("pause", "stop delivering (the webhook keeps its place)"),
                       ("resume", "deliver again from where it stopped"),
                       ("delete", "delete a webhook with its deliveries"),
                       ("deliveries", "show a webhook's latest delivery attempts")):
        sub.add_parser(name, help=text).add_argument("webhook_id")
    for each in sub.choices.values():
        remote(each)
        each.add_argument("--json", action="store_true", help="print JSON instead of a table")


async def webhooks(args: argparse.Namespace, urls: list[str]) -> None:
    """Run one `listener webhooks ...` command against the servers at `urls`."""
    from listener.client import Client

    console = Console() if Console().is_terminal else Console(width=200)
    async with Client(urls, token=args.token) as client:
        command = args.webhooks_command
        if command == "create":
            new = await client.webhooks.create(url=args.target, topics=args.topics, filter=args.filter,
                                               description=args.description)
            if args.json:
                print(new.model_dump_json(indent=2))
            else:
                _show(console, [new.webhook])
                print(f"Its signing secret, shown only this once:\n\n    {new.secret}\n")
        elif command == "list":
            listed = await client.webhooks.list()
            if args.json:
                print(json.dumps({"items": [w.model_dump(mode="json") for w in listed]}, indent=2))
            else:
                _show(console, listed)
        elif command == "deliveries":
            _deliveries(console, await client.webhooks.deliveries(args.webhook_id), args.json)
        elif command == "delete":
            await client.webhooks.delete(args.webhook_id)
            print(json.dumps({"deleted": args.webhook_id}) if args.json else f"Deleted webhook {args.webhook_id}.")
        else:
            changed = await (client.webhooks.pause if command == "pause" else client.webhooks.resume)(args.webhook_id)
            print(changed.model_dump_json(indent=2)) if args.json else _show(console, [changed])


def _show(console: Console, webhooks: Sequence[Webhook]) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("id", "status", "url", "topics", "filter", "cursor"):
        table.add_column(name, no_wrap=name in ("id", "status"), overflow="fold")
    for w in webhooks:
        table.add_row(w.id, w.status.value, w.url, ", ".join(w.topics), json.dumps(w.filter) if w.filter else "",
                      "" if w.cursor is None else str(w.cursor))
    console.print(table)


def _deliveries(console: Console, deliveries: Sequence[WebhookDelivery], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"items": [d.model_dump(mode="json") for d in deliveries]}, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("at", "event", "topic", "attempt", "result", "ms"):
        table.add_column(name, overflow="fold")
    for d in deliveries:
        table.add_row(d.at.strftime("%Y-%m-%d %H:%M:%S"), d.event_id, d.topic, str(d.attempt),
                      str(d.status_code) if d.ok else (d.error or f"HTTP {d.status_code}"), f"{d.duration_ms:.0f}")
    console.print(table)
