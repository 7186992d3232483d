"""`listener users create | list | revoke | rotate`: users managed directly on the database.

Directly on the database, as `create` always was, so that an operator who has lost every admin token can
still make or rotate one. A server sharing the database refuses a revoked or rotated token within
AUTH_CACHE_SECONDS (see `listener.platform.auth`); the `/api/v1/users` routes do the same over REST, at once
on the server that serves them.
"""

from __future__ import annotations

import argparse
import json

from rich import box
from rich.console import Console
from rich.table import Table

from listener.platform import Platform
from listener.platform.auth import AUTH_CACHE_SECONDS, User, Users

__all__ = ["users_command"]


async def users_command(args: argparse.Namespace) -> None:
    """Run `listener users <command>` on the database `args.db`."""
    async with Platform.open(args.db, system_jobs=False, sweep_interval=None, retention=None) as platform:
        users = Users(platform.store, platform.clock)
        command = args.users_command
        if command == "create":
            user, token = await users.create(args.name, args.role)
            _token(f"Created {user.role.value} {user.name}.", token, args.token_only)
        elif command == "list":
            _list(await users.all(), args.json)
        elif command == "revoke":
            user = await users.revoke(args.name)
            if args.json:
                print(user.model_dump_json(indent=2))
            else:
                print(f"Revoked {user.name}'s token: it is refused from now on (by a running server within "
                      f"{AUTH_CACHE_SECONDS:g} s). `listener users rotate {user.name}` gives it a new one.")
        else:
            user, token = await users.rotate(args.name)
            if args.json:
                print(json.dumps({"user": user.model_dump(mode="json"), "token": token}, indent=2))
            else:
                _token(f"Rotated {user.name}'s token; the old one is refused from now on.", token, args.token_only)


def _token(headline: str, token: str, token_only: bool) -> None:
    if token_only:
        print(token)
    else:
        print(f"{headline} Its token, shown only this once:\n\n    {token}\n")


def _list(users: list[User], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"items": [u.model_dump(mode="json") for u in users]}, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("name", "role", "created", "token"):
        # A name is what the next command takes: never cut, however narrow the terminal.
        table.add_column(name, no_wrap=name == "name", overflow="fold")
    for user in users:
        if user.revoked_at is not None:
            token = f"revoked {user.revoked_at:%Y-%m-%d %H:%M:%S}"
        elif user.rotated_at is not None:
            token = f"rotated {user.rotated_at:%Y-%m-%d %H:%M:%S}"
        else:
            token = "works"
        table.add_row(user.name, user.role.value, f"{user.created_at:%Y-%m-%d %H:%M:%S}", token)
    console = Console() if Console().is_terminal else Console(width=200)
    console.print(table)
    console.print(f"{len(users)} user(s)", highlight=False)
