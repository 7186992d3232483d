"""Job lifecycle benchmark: N jobs through create → ready → ack → update → complete, in-process on SQLite.

Two paths are measured, each on a fresh database per run (unless --db is given):

* job_handler: a Listener with `job_handler("workbook:bench", handler)` run by `platform.running`; the
  handler does one `tick(50, "half")`. The benchmark creates the N jobs (at most C creations in flight)
  and counts job:completed events through `platform.eventlog.on_batch`.
* raw: no listener; each job is created, acked, updated and completed by direct Api calls, C jobs in flight.

Figures per run and the median of the runs: jobs/s, events/s, and for job_handler the latency from
`jobs.create` being called to the handler starting (dispatch; this includes the ack write job_handler does
before calling the handler) and to job:completed being published (end to end).

    .venv/bin/python bench/lifecycle.py                        # 5000 jobs, 3 runs, concurrency 64
    .venv/bin/python bench/lifecycle.py --jobs 1000 --json     # also print the results as JSON
    .venv/bin/python bench/lifecycle.py --profile              # one run of each path under cProfile
    .venv/bin/python bench/lifecycle.py --steady 200 --seconds 5   # job_handler latency under a steady load
    .venv/bin/python bench/lifecycle.py --db postgresql://127.0.0.1/test   # a fresh schema per run

`make bench` (bench/suite.py) runs this path among its scenarios; `measure(path, parse_args([...]), run)` is
what it calls.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform as pyplatform
import pstats
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio

from listener import Event, Listener, Outcome, Platform, tune_gc
from listener.process import loop_options
from listener.topics import JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED
from plugins.job_handler import Tick, job_handler

JOB = "workbook:bench"
PATHS = ("job_handler", "raw")
_ENDED = frozenset({JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})


# -- measurements ---------------------------------------------------------------


@dataclass
class RunResult:
    path: str
    run: int
    jobs: int
    wall_s: float
    events: int
    cpu_s: float
    loop_cpu_s: float
    rss_mib: float
    failed: int = 0
    batches: int | None = None
    writes: int | None = None
    writer_busy_s: float | None = None
    writer_cpu_s: float | None = None
    dispatch_ms: list[float] = field(default_factory=list, repr=False)
    e2e_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    def figures(self) -> dict[str, float | None]:
        """The numbers shown in the table (and in --json), by column."""
        return {
            "jobs_per_s": self.jobs_per_s,
            "events_per_s": self.events_per_s,
            "wall_s": self.wall_s,
            "dispatch_p50_ms": percentile(self.dispatch_ms, 50),
            "dispatch_p99_ms": percentile(self.dispatch_ms, 99),
            "e2e_p50_ms": percentile(self.e2e_ms, 50),
            "e2e_p99_ms": percentile(self.e2e_ms, 99),
            "cpu_per_wall": self.cpu_s / self.wall_s,
            "loop_us_per_job": self.loop_cpu_s / self.jobs * 1e6,
            "writer_us_per_job": self.writer_cpu_s / self.jobs * 1e6 if self.writer_cpu_s is not None else None,
            "writes_per_batch": self.writes / self.batches if self.writes is not None and self.batches else None,
            "writer_busy": self.writer_busy_s / self.wall_s if self.writer_busy_s is not None else None,
            "rss_mib": self.rss_mib,
        }


def percentile(values: Sequence[float], p: int) -> float | None:
    """The p-th percentile (1-99) of `values`, inclusive method; None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class WriterStats:
    """Counts the store's write batches and the time spent in them (on the loop's thread, or a worker thread).

    It wraps the SqliteStore's batch function on the instance (the framework files are untouched); if the
    store has no such function it does nothing and the table shows "-". With a profiler it also profiles
    batches run in a worker thread (synchronous=FULL), which cProfile, being per-thread, would otherwise not see.
    """

    def __init__(self, profiler: cProfile.Profile | None = None) -> None:
        self.batches = 0
        self.writes = 0
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self.profiler = profiler
        self.installed = False

    def install(self, store: Any) -> None:
        run_batch = getattr(store, "_run_batch", None)
        if run_batch is None:
            return

        def timed(batch: list[Any], wait: bool) -> bool:
            start, cpu = time.perf_counter(), time.thread_time()
            # A batch on the event loop's thread is already in the loop's profile.
            profiler = None if threading.current_thread() is threading.main_thread() else self.profiler
            if profiler is not None:
                profiler.enable()
            try:
                return bool(run_batch(batch, wait))
            finally:
                if profiler is not None:
                    profiler.disable()
                self.busy_s += time.perf_counter() - start
                self.cpu_s += time.thread_time() - cpu
                self.batches += 1
                self.writes += len(batch)

        try:
            store._run_batch = timed
        except AttributeError:  # a store with __slots__: run without the writer figures
            return
        self.installed = True


def fresh_db(args: argparse.Namespace, stack: ExitStack) -> str:
    if args.db and str(args.db).startswith(("postgresql://", "postgres://")):
        # A fresh schema per run, dropped afterwards, so runs do not measure each other's rows.
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        stack.callback(subprocess.run, ["psql", str(args.db), "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                       check=False, capture_output=True)
        return f"{args.db}{'&' if '?' in str(args.db) else '?'}schema={schema}"
    if args.db:
        return str(args.db)
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="listener-bench-"))
    return str(Path(tmp) / "bench.db")


# -- the job_handler path -------------------------------------------------------------


async def run_job_handler(args: argparse.Namespace, run: int, writer: WriterStats) -> RunResult:
    """The job_handler path: bulk (at most C creations in flight) or, with `args.steady`, one by one at a rate.

    Bulk creates `args.jobs` jobs, or as many as fit in `args.max_seconds` (when given): a run then lasts about
    that long whatever the speed; with `args.backlog`, creation waits while that many jobs are created but not
    ended (so a run's tail is short). Steady creates `args.steady` jobs a second for `args.seconds` seconds.
    """
    c = args.concurrency
    rate: float | None = getattr(args, "steady", None)
    max_seconds: float | None = getattr(args, "max_seconds", None)
    backlog = Backlog(getattr(args, "backlog", None))
    n = args.jobs if rate is None else max(1, round(rate * args.seconds))  # lowered to what was created
    created: dict[str, float] = {}  # job id → when jobs.create was called (as peers' latency counts from enqueue)
    started: dict[str, float] = {}  # job id → when the handler started
    ended: dict[str, float] = {}  # job id → when its job:completed (or failed/cancelled) was published
    failed = 0
    all_done = anyio.Event()

    async def handler(event: Event, tick: Tick) -> None:
        started[event.context.job_id or ""] = time.perf_counter()
        await tick(50, "half")

    def on_batch(events: Sequence[Event]) -> None:
        nonlocal failed
        now = time.perf_counter()
        for e in events:
            if e.topic in _ENDED and e.context.job_id in created:
                ended[e.context.job_id] = now
                if e.topic != JOB_COMPLETED:
                    failed += 1
        backlog.ended(len(ended))
        if len(ended) >= n:
            all_done.set()

    listener = Listener("bench")
    listener.use(job_handler(JOB, handler))
    with ExitStack() as stack:
        db = fresh_db(args, stack)
        async with Platform.open(db, synchronous=args.synchronous) as platform:
            writer.install(platform.store)
            jobs = platform.api.jobs
            await configure_fair(args, platform)
            platform.eventlog.on_batch(on_batch)
            # A fresh agent name: a new agent starts at the newest event, even on a reused --db.
            agent = f"bench-{uuid.uuid4().hex[:8]}"
            async with platform.running(listener, agent=agent, concurrency=c):
                head0 = await platform.store.head()
                batches0, writes0, busy0, wcpu0 = writer.batches, writer.writes, writer.busy_s, writer.cpu_s
                slots = anyio.Semaphore(c)

                async def create_one() -> None:
                    try:
                        called = time.perf_counter()
                        job = await jobs.create(type="workbook", operation="bench", **fair(args, len(created)))
                        created[job.id] = called
                    finally:
                        slots.release()

                cpu0, loop0 = cpu_seconds(), time.thread_time()
                t0 = time.perf_counter()
                with anyio.fail_after(args.timeout):
                    async with anyio.create_task_group() as tg:
                        begin = anyio.current_time()
                        for i in range(n):
                            if rate is not None:
                                await anyio.sleep_until(begin + i / rate)  # open loop: on schedule, however slow
                            elif max_seconds is not None and anyio.current_time() - begin >= max_seconds:
                                break
                            await backlog.wait_below(i)
                            await slots.acquire()
                            tg.start_soon(create_one)
                    n = len(created)
                    if len(ended) >= n:
                        all_done.set()
                    await all_done.wait()
                t1 = max(ended.values())
                cpu, loop_cpu = cpu_seconds() - cpu0, time.thread_time() - loop0
                head1 = await platform.store.head()
                batches, writes, busy = writer.batches - batches0, writer.writes - writes0, writer.busy_s - busy0
                wcpu = writer.cpu_s - wcpu0
            platform.eventlog.off_batch(on_batch)

    return RunResult(
        path="job_handler",
        run=run,
        jobs=n,
        wall_s=t1 - t0,
        events=head1 - head0,
        cpu_s=cpu,
        loop_cpu_s=loop_cpu,
        rss_mib=peak_rss_mib(),
        failed=failed,
        batches=batches if writer.installed else None,
        writes=writes if writer.installed else None,
        writer_busy_s=busy if writer.installed else None,
        writer_cpu_s=wcpu if writer.installed else None,
        dispatch_ms=[(started[j] - created[j]) * 1000 for j in started if j in created],
        e2e_ms=[(ended[j] - created[j]) * 1000 for j in ended],
    )


class Backlog:
    """Bulk creation's brake: with a limit, wait while `limit` jobs are created but not ended (None: never)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._ended = 0
        self._changed = anyio.Event()

    def ended(self, count: int) -> None:
        """Called with how many jobs have ended so far."""
        if count != self._ended:
            self._ended = count
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_below(self, issued: int) -> None:
        """Return once fewer than `limit` of the `issued` jobs (creations started) have not ended."""
        while self.limit is not None and issued - self._ended >= self.limit:
            await self._changed.wait()


# -- the raw Api path -----------------------------------------------------------


async def run_raw(args: argparse.Namespace, run: int, writer: WriterStats) -> RunResult:
    n, c = args.jobs, args.concurrency
    outcome = Outcome(message="Job complete.")
    lifecycle_ms: list[float] = []

    with ExitStack() as stack:
        db = fresh_db(args, stack)
        async with Platform.open(db, synchronous=args.synchronous) as platform:
            writer.install(platform.store)
            jobs = platform.api.jobs
            await configure_fair(args, platform)
            head0 = await platform.store.head()
            batches0, writes0, busy0, wcpu0 = writer.batches, writer.writes, writer.busy_s, writer.cpu_s
            slots = anyio.Semaphore(c)

            async def one() -> None:
                try:
                    start = time.perf_counter()
                    job = await jobs.create(type="workbook", operation="bench", **fair(args, len(lifecycle_ms)))
                    await jobs.ack(job.id, info="Accepted", progress=0)
                    await jobs.update(job.id, progress=50, info="half")
                    await jobs.complete(job.id, outcome=outcome)
                    lifecycle_ms.append((time.perf_counter() - start) * 1000)
                finally:
                    slots.release()

            cpu0, loop0 = cpu_seconds(), time.thread_time()
            t0 = time.perf_counter()
            with anyio.fail_after(args.timeout):
                async with anyio.create_task_group() as tg:
                    for _ in range(n):
                        await slots.acquire()
                        tg.start_soon(one)
            t1 = time.perf_counter()
            cpu, loop_cpu = cpu_seconds() - cpu0, time.thread_time() - loop0
            head1 = await platform.store.head()
            batches, writes, busy = writer.batches - batches0, writer.writes - writes0, writer.busy_s - busy0
            wcpu = writer.cpu_s - wcpu0

    return RunResult(
        path="raw",
        run=run,
        jobs=n,
        wall_s=t1 - t0,
        events=head1 - head0,
        cpu_s=cpu,
        loop_cpu_s=loop_cpu,
        rss_mib=peak_rss_mib(),
        batches=batches if writer.installed else None,
        writes=writes if writer.installed else None,
        writer_busy_s=busy if writer.installed else None,
        writer_cpu_s=wcpu if writer.installed else None,
        # Per job, create called → complete returned: the raw path's own end-to-end figure.
        e2e_ms=lifecycle_ms,
    )


RUNNERS: dict[str, Callable[[argparse.Namespace, int, WriterStats], Any]] = {
    "job_handler": run_job_handler,
    "raw": run_raw,
}


_PRIORITIES = (0, 3, -1, 7, 1)


def fair(args: argparse.Namespace, i: int) -> dict[str, Any]:
    """With --keys N: the i-th job's priority (cycling through a few) and concurrency key (one of N, in turn)."""
    if not args.keys:
        return {}
    return {"priority": _PRIORITIES[i % len(_PRIORITIES)], "concurrency_key": f"tenant:{i % args.keys}"}


async def configure_fair(args: argparse.Namespace, platform: Platform) -> None:
    """With --keys N: workbook:bench limits each key to --concurrency running, so every start is admitted against
    its key (counted in the transaction) without a key ever holding one back: the claim path's own cost."""
    if args.keys:
        await platform.api.jobs.configure("workbook:bench", max_running_per_key=args.concurrency)


def measure(path: str, args: argparse.Namespace, run: int, profiler: cProfile.Profile | None = None,
            writer_profiler: cProfile.Profile | None = None) -> RunResult:
    writer = WriterStats(writer_profiler)

    async def main() -> RunResult:
        result: RunResult = await RUNNERS[path](args, run, writer)
        return result

    if profiler is None:
        return anyio.run(main, backend_options=loop_options())
    result: RunResult = profiler.runcall(anyio.run, main, backend_options=loop_options())
    return result


# -- output ---------------------------------------------------------------------

COLUMNS: list[tuple[str, str, int, str]] = [
    # key, heading, width, format
    ("jobs_per_s", "jobs/s", 9, ",.0f"),
    ("events_per_s", "events/s", 10, ",.0f"),
    ("wall_s", "wall s", 8, ".2f"),
    ("dispatch_p50_ms", "disp p50", 9, ".1f"),
    ("dispatch_p99_ms", "disp p99", 9, ".1f"),
    ("e2e_p50_ms", "e2e p50", 9, ".1f"),
    ("e2e_p99_ms", "e2e p99", 9, ".1f"),
    ("cpu_per_wall", "cpu/wall", 9, ".2f"),
    ("loop_us_per_job", "loop us", 8, ",.0f"),
    ("writer_us_per_job", "wr us", 7, ",.0f"),
    ("writer_busy", "wr busy", 8, ".0%"),
    ("writes_per_batch", "wr/batch", 9, ".1f"),
    ("rss_mib", "RSS MiB", 8, ".0f"),
]


def header_lines(args: argparse.Namespace) -> list[str]:
    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    return [
        f"Python {pyplatform.python_version()} ({pyplatform.python_implementation()}), "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPU(s), {pyplatform.platform(terse=True)}",
        f"anyio {pkg('anyio')}, pydantic {pkg('pydantic')}, pyee {pkg('pyee')}",
        f"jobs={args.jobs} runs={args.runs} concurrency={args.concurrency} synchronous={args.synchronous} "
        + (f"steady={args.steady:g}/s for {args.seconds:g}s " if getattr(args, "steady", None) else "")
        + (f"max-seconds={args.max_seconds:g} " if getattr(args, "max_seconds", None) else "")
        + (f"backlog={args.backlog} " if getattr(args, "backlog", None) else "")
        + f"db={args.db or 'fresh temp file per run'}",
    ]


def row(label: str, run: str, figures: dict[str, float | None]) -> str:
    cells = [f"{label:<12}", f"{run:>6}"]
    for key, _, width, fmt in COLUMNS:
        value = figures.get(key)
        cells.append(f"{'-' if value is None else format(value, fmt):>{width}}")
    return " ".join(cells)


def medians(results: list[RunResult]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, *_ in COLUMNS:
        values = [v for r in results if (v := r.figures()[key]) is not None]
        out[key] = statistics.median(values) if values else None
    return out


def print_table(results: list[RunResult]) -> None:
    heading = " ".join([f"{'path':<12}", f"{'run':>6}", *(f"{h:>{w}}" for _, h, w, _ in COLUMNS)])
    print(heading)
    print("-" * len(heading))
    for path in PATHS:
        mine = [r for r in results if r.path == path]
        if not mine:
            continue
        for r in mine:
            print(row(path, str(r.run), r.figures()))
        print(row(path, "median", medians(mine)))
        print()
    print("disp = jobs.create called → handler started (includes job_handler's ack write); e2e = create called →")
    print("job:completed published (raw: create called → complete returned); latencies in ms. cpu/wall = process CPU")
    print("seconds per wall second (2 cores: at most 2.0). loop us = CPU µs per job of the event-loop thread")
    print("(framework, benchmark client and, with synchronous=NORMAL, the write batches); wr us = the part of it")
    print("inside write batches (with FULL, in a worker thread). wr busy = share of wall time spent inside a batch.")
    print("wr/batch = writes per commit.")
    failed = sum(r.failed for r in results)
    if failed:
        print(f"WARNING: {failed} job(s) ended failed or cancelled instead of complete.")


def print_profile(title: str, profiler: cProfile.Profile, top: int) -> None:
    for sort, count in (("cumulative", top), ("tottime", top)):
        out = io.StringIO()
        try:
            stats = pstats.Stats(profiler, stream=out)
        except TypeError:  # nothing was recorded
            print(f"\n== {title}: no samples")
            return
        stats.strip_dirs().sort_stats(sort).print_stats(count)
        text = out.getvalue()
        # Drop pstats' preamble up to the summary line, keep the totals and the table.
        start = text.find("function calls")
        start = text.rfind("\n", 0, start) + 1 if start >= 0 else 0
        print(f"\n== {title}: top {count} by {sort} time")
        print(text[start:].rstrip())


# -- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per run (default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per path; figures are the median (default 3)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="runner concurrency and jobs kept in flight (default 64)")
    parser.add_argument("--db", default=None,
                        help="database file to use for every run (default: a fresh temp file per run)")
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL",
                        help="SQLite synchronous mode (default NORMAL)")
    parser.add_argument("--path", choices=[*PATHS, "both"], default="both", help="which path to measure")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="job_handler path: stop creating jobs after this many seconds (the run then counts the "
                             "jobs created so far; default: create all --jobs)")
    parser.add_argument("--backlog", type=int, default=None,
                        help="job_handler path, bulk: create no more while this many jobs are created but not ended "
                             "(default: no limit but --concurrency creations in flight)")
    parser.add_argument("--steady", type=float, default=None, metavar="RATE",
                        help="job_handler path: instead of in bulk, create jobs one by one at RATE per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long --steady creates jobs (default 5)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take (default 300)")
    parser.add_argument("--keys", type=int, default=0, metavar="N",
                        help="priorities and N concurrency keys in use, each key limited (default 0: neither)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's default GC thresholds instead of calling listener.tune_gc() first")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the runs, run each path once under cProfile and print the hot spots")
    parser.add_argument("--top", type=int, default=25, help="functions to show per profile table (default 25)")
    args = parser.parse_args(argv)
    for name in ("jobs", "runs", "concurrency", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.steady is not None and (args.steady <= 0 or args.seconds <= 0):
        parser.error("--steady and --seconds must be positive")
    if args.steady is not None and args.path == "raw":
        parser.error("--steady measures the job_handler path")
    if args.steady is not None:
        args.path = "job_handler"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    paths = list(PATHS) if args.path == "both" else [args.path]
    if args.profile:
        args.runs = 1  # one profiled run per path
    if not args.default_gc:
        tune_gc()  # as listener serve / run / dev do
    for line in header_lines(args):
        print(line)
    print()

    results: list[RunResult] = []
    try:
        if args.profile:
            print("Profiling one run per path (figures are slowed by the profiler).\n")
            profiles: list[tuple[str, cProfile.Profile, cProfile.Profile]] = []
            for path in paths:
                loop_profiler, writer_profiler = cProfile.Profile(), cProfile.Profile()
                results.append(measure(path, args, 1, loop_profiler, writer_profiler))
                profiles.append((path, loop_profiler, writer_profiler))
            print_table(results)
            for path, loop_profiler, writer_profiler in profiles:
                print_profile(f"{path}: event-loop thread", loop_profiler, args.top)
                if writer_profiler.getstats():  # only batches run in a worker thread
                    print_profile(f"{path}: writer thread (SqliteStore batches)", writer_profiler, args.top)
        else:
            for run in range(1, args.runs + 1):
                for path in paths:
                    results.append(measure(path, args, run))
            print_table(results)
    except TimeoutError:
        print(f"A run took longer than --timeout {args.timeout:g}s; giving up.", file=sys.stderr)
        return 1

    print(f"\npeak RSS: {peak_rss_mib():.0f} MiB")
    if args.json:
        doc = {
            "header": header_lines(args),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "runs": [
                {**{k: v for k, v in asdict(r).items() if k not in ("dispatch_ms", "e2e_ms")}, **r.figures()}
                for r in results
            ],
            "median": {p: medians([r for r in results if r.path == p]) for p in paths},
            "peak_rss_mib": peak_rss_mib(),
        }
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
