"""A harness for testing your listeners: a real platform on a temporary SQLite file, your listener running in it.

```python
import pytest
from listener.testing import run_listener
from myapp.listeners import listener

@pytest.mark.anyio
async def test_export(tmp_path):
    async with run_listener(listener, path=tmp_path / "test.db") as h:
        wb = await h.api.workbooks.create(name="W", sheets=[{"name": "Contacts"}],
                                          actions=[{"operation": "export", "label": "Export"}])
        job = await h.trigger(wb.id, "export")
        assert job.status == "complete"
        assert job.outcome.message == "Exported 0 records."
```
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from listener.listener import Listener
from listener.models import Event, Job, Record
from listener.platform import Platform, PlatformApi
from listener.runner import Runner
from listener.topics import JOB_CREATED, compile_topic
from listener.types import Clock

__all__ = ["Harness", "run_listener"]


class Harness:
    """A platform with your listener running in it, and helpers to drive it and wait for results."""

    def __init__(self, platform: Platform, runner: Runner, *, timeout: float) -> None:
        self.platform = platform
        self.runner = runner
        self.timeout = timeout
        self.api: PlatformApi = platform.api.as_actor("test")
        self._seen = 0

    async def trigger(self, source_id: str, operation: str, *, input: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Job:
        """Press an action's button and return its job once it has ended (complete, failed or cancelled)."""
        job = await self.api.actions.trigger(source_id, operation, input=input)
        return await self.api.jobs.wait(job.id, timeout=timeout or self.timeout)

    async def insert(self, sheet_id: str, records: Sequence[dict[str, Any]]) -> list[Record]:
        """Insert records in one commit (your commit:created listeners see it)."""
        return await self.api.records.insert(sheet_id, records)

    async def next_job(self, job: str = "**", *, timeout: float | None = None) -> Job:
        """Wait for the next job named like `job` (a glob: "workbook:*") to be created, then for it to end.

        "Next" means created after the previous `next_job` returned (or after the harness started),
        so a test can follow the jobs a listener creates one after the other.
        """
        matches = compile_topic(job)
        with anyio.fail_after(timeout or self.timeout):
            async with self.platform.eventlog.subscribe(self._seen) as events:
                async for event in events:
                    self._seen = event.seq
                    if event.topic == JOB_CREATED and event.context.job and matches(event.context.job):
                        assert event.context.job_id is not None
                        return await self.api.jobs.wait(event.context.job_id)
        raise AssertionError("unreachable: the subscription never ends")  # pragma: no cover

    async def events(self, topic: str = "**", *, job_id: str | None = None) -> list[Event]:
        """Every event so far whose topic matches the glob `topic` (optionally about one job), in order."""
        matches = compile_topic(topic)
        out: list[Event] = []
        after = 0
        while batch := await self.platform.store.read_events(after, 1000, job_id):
            out.extend(e for e in batch if matches(e.topic))
            after = batch[-1].seq
        return out


@asynccontextmanager
async def run_listener(
    listener: Listener,
    *,
    path: str | Path | None = None,
    clock: Clock | None = None,
    timeout: float = 10.0,
    concurrency: int = 10,
) -> AsyncIterator[Harness]:
    """Run `listener` on a fresh platform for the length of the block.

    Args:
        path: the SQLite file (default: a new temporary directory, removed afterwards).
        clock: a clock the test controls, if the listener's logic depends on time.
        timeout: how long `trigger` and `next_job` wait by default, in seconds.
    """
    with tempfile.TemporaryDirectory(prefix="listener-test-") as tmp:
        db = Path(path) if path is not None else Path(tmp) / "listener.db"
        async with Platform.open(str(db), clock=clock) as platform:
            async with platform.running(listener, agent="test", concurrency=concurrency) as runner:
                harness = Harness(platform, runner, timeout=timeout)
                harness._seen = await platform.store.head()
                yield harness
