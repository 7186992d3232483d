"""`listener dev module.py`: the platform, the server and the module's listener in one real process."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from listener import JobStatus, Platform
from listener.client import Client
from listener.errors import Unauthorized
from listener.platform.auth import Role, Users
from tests.test_processes import Lines

pytestmark = pytest.mark.anyio

MODULE = '''
from listener import Listener, Outcome
from plugins.job_handler import job_handler

async def export(event, tick):
    await tick(50, "halfway")
    return Outcome(message=f"Exported {event.context.workbook_id} in dev.")

listener = Listener("dev-exporter").use(job_handler("workbook:export", export))
'''

URL = r"Listener dev server: (http://127\.0\.0\.1:(\d+))/api/v1"
TOKEN = r"^Token: (lst_\S+)$"


@asynccontextmanager
async def dev(module: Path, db: str, *options: str) -> AsyncIterator[tuple[Process, Lines]]:
    """`listener dev module.py --db ... --port 0`, with no LISTENER_* variable of ours to change its options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTENER_")}
    command = [sys.executable, "-m", "listener.cli", "dev", str(module), "--db", db, "--port", "0", *options]
    async with await anyio.open_process(command, env={**env, "PYTHONUNBUFFERED": "1"}, stderr=-2) as process:
        try:
            yield process, Lines(process)
        finally:
            if process.returncode is None:
                process.kill()


async def address(out: Lines) -> tuple[str, int, str]:
    """The URL, port and token `dev` prints once it is ready; the token line comes after the URL."""
    token = (await out.wait_for(TOKEN)).group(1)
    # Read from what was seen: Lines.wait_for drops the other lines of the chunk its match came in.
    found = [match for line in out.seen if (match := re.search(URL, line))]
    assert len(found) == 1, out.seen
    return found[0].group(1), int(found[0].group(2)), token


async def stop(process: Process, out: Lines) -> None:
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(20):
        assert await process.wait() == 0, "\n".join(out.seen)


async def test_dev_serves_the_platform_and_runs_the_module_s_listener(tmp_path: Path) -> None:
    module = tmp_path / "exporter.py"
    module.write_text(MODULE)
    db = f"sqlite:///{tmp_path / 'dev.db'}"
    async with dev(module, db) as (process, out):
        url, port, token = await address(out)
        assert port != 0  # the port it bound, not the 0 it was asked for
        async with Client(url, token=token) as client:
            workbook = await client.workbooks.create(name="W", actions=[{"operation": "export", "label": "Export"}])
            job = await client.actions.trigger(workbook.id, "export")
            assert job.job == "workbook:export" and job.source == workbook.id
            job = await client.jobs.wait(job.id, timeout=20)
        assert job.status is JobStatus.COMPLETE, job
        assert job.outcome is not None and job.outcome.message == f"Exported {workbook.id} in dev.", job
        assert job.progress == 100 and job.attempt == 1
        await stop(process, out)
    # What it did is in the database it was given.
    async with Platform.open(db) as platform:
        stored = await platform.api.jobs.get(job.id)
        assert stored.status is JobStatus.COMPLETE and stored.outcome == job.outcome
        topics = [e.topic for e in await platform.api.events.list(after=0, limit=1000, job_id=job.id)]
        assert topics[:2] == ["job:created", "job:ready"] and topics[-1] == "job:completed", topics


async def test_dev_again_on_the_same_database_reuses_its_admin_and_token(tmp_path: Path) -> None:
    module = tmp_path / "exporter.py"
    module.write_text(MODULE)
    db = f"sqlite:///{tmp_path / 'dev.db'}"
    async with dev(module, db) as (process, out):
        _, _, first = await address(out)
        await stop(process, out)
    kept = tmp_path / "dev.db-dev-token"
    assert kept.read_text().strip() == first and kept.stat().st_mode & 0o777 == 0o600
    async with dev(module, db) as (process, out):
        url, _, second = await address(out)
        assert second == first  # the same admin, not one more at every start
        async with Client(url, token=second) as client:
            workbook = await client.workbooks.create(name="W", actions=[{"operation": "export", "label": "Export"}])
            job = await client.jobs.wait((await client.actions.trigger(workbook.id, "export")).id, timeout=20)
            assert job.status is JobStatus.COMPLETE
        async with Client(url, token="lst_not-a-token-of-this-server") as client:
            with pytest.raises(Unauthorized):
                await client.workbooks.create(name="W")
        await stop(process, out)
    async with Platform.open(db, system_jobs=False) as platform:
        assert await Users(platform.store, platform.clock).count() == 1


async def test_dev_makes_a_new_admin_when_the_kept_token_is_not_one_of_this_database(tmp_path: Path) -> None:
    module = tmp_path / "exporter.py"
    module.write_text(MODULE)
    db = f"sqlite:///{tmp_path / 'dev.db'}"
    async with Platform.open(db, system_jobs=False) as platform:
        await Users(platform.store, platform.clock).create("ann", Role.MEMBER)
    (tmp_path / "dev.db-dev-token").write_text("lst_from-another-database-long-ago\n")
    async with dev(module, db) as (process, out):
        url, _, token = await address(out)
        async with Client(url, token=token) as client:
            assert (await client.request("GET", "/users/me"))["role"] == "admin"
        await stop(process, out)
    assert (tmp_path / "dev.db-dev-token").read_text().strip() == token
    async with Platform.open(db, system_jobs=False) as platform:
        assert await Users(platform.store, platform.clock).count() == 2  # ann and the new dev admin


def replace(path: Path, text: str) -> None:
    """Save as many editors do: a new file moved over the old one."""
    saving = path.with_name(f".{path.name}.saving")
    saving.write_text(text)
    os.replace(saving, path)


async def test_dev_loads_the_module_again_when_its_file_changes(tmp_path: Path) -> None:
    module = tmp_path / "exporter.py"
    module.write_text(MODULE)
    db = f"sqlite:///{tmp_path / 'dev.db'}"
    async with dev(module, db) as (process, out):
        url, _, token = await address(out)
        async with Client(url, token=token) as client:
            workbook = await client.workbooks.create(name="W", actions=[{"operation": "export", "label": "Export"}])

            async def export() -> str | None:
                job = await client.jobs.wait((await client.actions.trigger(workbook.id, "export")).id, timeout=20)
                assert job.status is JobStatus.COMPLETE, job
                return job.outcome.message if job.outcome else None

            assert await export() == f"Exported {workbook.id} in dev."
            replace(module, MODULE.replace("in dev.", "in dev, edited."))
            await out.wait_for(r"Reloaded exporter\.py: listener 'dev-exporter' is running its new version")
            assert await export() == f"Exported {workbook.id} in dev, edited."
            # A save that does not load leaves the version before running, and says why.
            replace(module, MODULE.replace("async def export", "async def export("))
            await out.wait_for(r"^SyntaxError")  # the traceback's last line, with the file and line before it
            assert any("Could not load exporter.py again; the version loaded before goes on running" in line
                       for line in out.seen), out.seen
            assert await export() == f"Exported {workbook.id} in dev, edited."
            module.write_text(MODULE.replace("in dev.", "in dev, fixed."))  # saved in place this time
            await out.wait_for(r"Reloaded exporter\.py")
            assert await export() == f"Exported {workbook.id} in dev, fixed."
        await stop(process, out)


async def test_dev_without_reload_does_not_watch(tmp_path: Path) -> None:
    module = tmp_path / "exporter.py"
    module.write_text(MODULE)
    async with dev(module, f"sqlite:///{tmp_path / 'dev.db'}", "--no-reload") as (process, out):
        await address(out)
        await stop(process, out)
    assert not any("Watching" in line for line in out.seen), out.seen
