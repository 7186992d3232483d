"""Fan-out: 100 listeners with distinct filters on one platform, events/s dispatched.

A platform on a fresh SQLite file runs 100 listeners in-process (`platform.running`, each its own agent with its
own cursor, as 100 deployed listeners would be), listener i having one handler on `job:updated` with the filter
`{"job": "workbook:opNNN"}`. The benchmark appends `job:updated` events to the log through the store, 100 per
write (each event about one of the 100 job names in turn, so each reaches exactly one handler), keeping 4 writes in
flight for `--seconds`, then waits until every event's handler has run. events/s = events dispatched (handled)
per second, from the first append to the last handler.

Every event is written to the log (durable, as any event) and offered to all 100 listeners, whose filters pick
the one it is for; the limit printed beside it (bench/limits.py) is pyee's emit to 100 handlers.

    .venv/bin/python bench/fanout.py                # 3 runs of 3 s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import anyio

from listener import Event, Listener, Platform
from listener.models import EventContext
from listener.platform.store.base import NewEvent
from listener.process import loop_options

LISTENERS = 100
PER_WRITE = 100
WRITES_IN_FLIGHT = 4


async def run_once(seconds: float, listeners: int = LISTENERS, timeout: float = 120.0) -> dict[str, float]:
    handled = 0
    appended = 0
    all_done = anyio.Event()
    last = 0.0
    producing = True

    def make_handler() -> Callable[[Event], Awaitable[None]]:
        async def handler(event: Event) -> None:
            nonlocal handled, last
            handled += 1
            last = time.perf_counter()
            if not producing and handled >= appended:
                all_done.set()

        return handler

    names = [f"op{i:03d}" for i in range(listeners)]
    with tempfile.TemporaryDirectory(prefix="listener-fanout-") as tmp:
        async with Platform.open(str(Path(tmp) / "fanout.db"), system_jobs=False) as platform, \
                AsyncExitStack() as stack:
            for i, name in enumerate(names):
                listener = Listener(f"fan{i:03d}")
                listener.on("job:updated", {"job": f"workbook:{name}"}, make_handler())
                await stack.enter_async_context(platform.running(listener, agent=f"fan{i:03d}", concurrency=10))
            now = datetime.now(UTC)
            batch = [NewEvent("job:updated", EventContext(job=f"workbook:{name}", domain="workbook", operation=name),
                              {"status": "executing", "progress": 50}, now) for name in names]
            batch = (batch * (PER_WRITE // len(batch) + 1))[:PER_WRITE]
            t0 = time.perf_counter()
            with anyio.fail_after(timeout):
                async def produce() -> None:
                    nonlocal appended
                    while time.perf_counter() - t0 < seconds:
                        await platform.store.append_events(batch)
                        appended += len(batch)

                async with anyio.create_task_group() as tg:
                    for _ in range(WRITES_IN_FLIGHT):
                        tg.start_soon(produce)
                producing = False
                if handled >= appended:
                    all_done.set()
                await all_done.wait()
            wall = last - t0
    return {"events_per_s": handled / wall, "events": handled, "wall_s": wall}


def measure(runs: int, seconds: float) -> list[dict[str, float]]:
    return [anyio.run(run_once, seconds, backend_options=loop_options()) for _ in range(runs)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are the median (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of appending per run (default 3)")
    args = parser.parse_args(argv)
    results = measure(args.runs, args.seconds)
    for i, r in enumerate(results, 1):
        print(f"run {i}: {r['events']:,.0f} events in {r['wall_s']:.2f}s, {r['events_per_s']:,.0f} events/s")
    print(f"median: {statistics.median(r['events_per_s'] for r in results):,.0f} events/s dispatched "
          f"to {LISTENERS} listeners")
    return 0


if __name__ == "__main__":
    sys.exit(main())
