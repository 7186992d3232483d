"""`listener dev`: the platform, its server and a listener in one process, for development.

Two things make the loop of editing and trying short:

- The listener's module is loaded again when its file changes (as Flatfile's `develop` does). The new
  version takes over from the old one under the same agent name, so its cursor goes on where the old
  one stopped: the old runner stops taking events, its handlers in flight get their grace to finish,
  and the new one delivers the rest. A module that fails to load is logged, and the version loaded
  before keeps running until the file is fixed.
- The admin user is made once per database and reused at every start, with the same token, kept in a
  file only its owner may read (beside a SQLite database; under ./.listener/ for PostgreSQL). The
  database keeps only the token's hash, as for every user.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from watchfiles import Change, awatch

from listener.errors import ListenerError, Unauthorized
from listener.listener import Listener
from listener.platform import Platform, sqlite_path
from listener.platform.auth import Role, Users
from listener.targets import load_listener, module_file

__all__ = ["dev_admin", "running", "token_file"]

log = logging.getLogger("listener.dev")

WATCH_TIMEOUT_MS = 250
"""How long the file watcher's thread waits before it looks at whether to stop: a shutdown waits for it
(watchfiles' own default, 5 s, would hold a SIGTERM up that long)."""


def token_file(db: str) -> Path:
    """Where `listener dev` keeps the token of its admin for the database `db`."""
    if db.startswith(("postgresql://", "postgres://")):
        # One file per database URL, named by a digest so that no password in the URL lands in a file name.
        return Path(".listener") / f"dev-token-{hashlib.sha256(db.encode()).hexdigest()[:16]}"
    path = sqlite_path(db)
    return path.with_name(f"{path.name}-dev-token")  # as SQLite names its own files beside it: listener.db-wal


async def dev_admin(users: Users, db: str) -> str:
    """The token of `listener dev`'s admin on `db`: the one kept from an earlier start while it is still an
    admin's, else a new admin's (the database's first user, or `dev-xxxxxx` beside the users it has), kept
    for the next start."""
    path = token_file(db)
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        try:
            if (await users.authenticate(kept)).role is Role.ADMIN:
                return kept
        except Unauthorized:
            pass  # another database at the same path, or the user is gone: make a new one
    token = await users.ensure_admin()
    if token is None:
        _, token = await users.create(f"dev-{os.urandom(3).hex()}", Role.ADMIN)
    try:
        _keep(path, token)
    except OSError as exc:  # a folder it may not write to: dev still runs, with a new admin at the next start
        log.warning("Could not keep the dev admin's token in %s (%s): the next start makes another admin.",
                    path, exc.strerror or exc)
    else:
        log.info("Kept the dev admin's token in %s for the next start.", path)
    return token


def _keep(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    # Written whole, readable by its owner only, then moved into place: never a half-written token. A partial file
    # left by a start that died goes first, since os.open's mode applies only to a file it creates.
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    os.replace(partial, path)


async def running(platform: Platform, target: str, listener: Listener, *, reload: bool = True,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Run `listener` (loaded from `target`) on `platform` until cancelled; with `reload`, load `target`
    again each time its file changes and run the new version in place of the old one.

    Reports readiness once the first version is running.
    """
    path: Path | None = None
    if reload:
        try:
            path = module_file(target)
        except ListenerError as exc:
            log.warning("%s Running without reloading it.", exc.message)
    if path is None:
        async with platform.running(listener):
            task_status.started()
            await anyio.sleep_forever()
        return
    watchfiles_log = logging.getLogger("watchfiles")
    if watchfiles_log.level == logging.NOTSET:
        watchfiles_log.setLevel(logging.WARNING)  # its "1 change detected" says less than our "Reloaded" line
    async with _changes(path) as changes:
        started = False
        while True:
            async with platform.running(listener):
                if not started:
                    log.info("Watching %s: the listener is loaded again when it changes.", path)
                    task_status.started()
                    started = True
                listener = await _next_version(changes, target, path)
            log.info("Reloaded %s: listener %r is running its new version.", path.name, listener.name)


@contextlib.asynccontextmanager
async def _changes(path: Path) -> AsyncIterator[AsyncIterator[set[tuple[Change, str]]]]:
    """Each change of the file at `path`, however an editor saves it (in place, or a new file moved over it),
    watched from the moment this is entered."""

    def same_file(change: Change, changed: str) -> bool:
        return change is not Change.deleted and Path(changed).resolve() == path

    # The folder is watched, not the file: a file moved over the old one is a new file a watch on it would miss.
    # Every WATCH_TIMEOUT_MS without a change gives an empty set, so that the first one says the watch is on.
    changes = awatch(path.parent, watch_filter=same_file, recursive=False, rust_timeout=WATCH_TIMEOUT_MS,
                     yield_on_timeout=True)
    async with contextlib.aclosing(changes):
        await anext(changes)  # the watcher starts with the generator's first step: a change after this is seen
        yield changes


async def _next_version(changes: AsyncIterator[set[tuple[Change, str]]], target: str, path: Path) -> Listener:
    """The listener from the next change of the file that loads; a change that fails to load is logged."""
    async for changed in changes:
        if not changed:
            continue
        try:
            return load_listener(target, again=True)
        except Exception:
            log.exception("Could not load %s again; the version loaded before goes on running.", path.name)
    raise RuntimeError(f"Stopped watching {path}.")  # pragma: no cover - the watch ends only when cancelled
