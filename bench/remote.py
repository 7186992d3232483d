"""Job lifecycle benchmark over HTTP: the listener is remote, on the REST API and the websocket event stream.

N jobs go through create → ready → ack → update → complete, with a job_handler listener whose handler does one
`tick(50, "half")` (as bench/lifecycle.py), but every call crosses HTTP and every event the websocket stream:

* process (default): `listener serve` in one subprocess on a fresh temp SQLite file per run, `listener run` of a
  small listener module (written to a temp dir) in a second one, and this process creating the jobs through a
  `Client`. Each handler appends "<job id> <time.time()>" to a file when it starts; it is read after the run.
* inprocess: `serve` and `run_listener` in this process, on one event loop, each with its own Client: the cost
  of HTTP and the stream without process boundaries (and the mode --profile profiles).

The jobs are created with at most --concurrency creations in flight (bulk), or with --steady RATE one by one at
a fixed rate for --seconds (latency under a steady load rather than under a backlog). Completion is counted on
`client.stream(after=<head before>, topics=["job:completed", ...])`.

Figures per run and the median of the runs: jobs/s, events/s, the latency from `jobs.create` being called (in this
process) to the handler starting (in the worker; dispatch) and to job:completed arriving on this process's
stream (end to end), CPU per job of each process, how busy each process's event loop was, the CPU the machine's
other processes took meanwhile (on a shared machine, a run beside other load is slow), and peak RSS.

    .venv/bin/python bench/remote.py                       # process mode: 2000 jobs, 3 runs, concurrency 32
    .venv/bin/python bench/remote.py --steady 200          # 200 jobs/s for 5 s, latency under a steady load
    .venv/bin/python bench/remote.py --mode inprocess      # server and listener in this process
    .venv/bin/python bench/remote.py --profile             # one inprocess run under cProfile
    .venv/bin/python bench/remote.py --workers 2           # two `listener run` workers sharing one agent
    .venv/bin/python bench/remote.py --db postgresql://127.0.0.1/test --replicas 2   # two `listener serve` replicas

`make bench` (bench/suite.py) runs these among its scenarios; `measure(mode, parse_args([...]), run)` is what it
calls.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import ctypes
import functools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import lifecycle

from listener import Event, Listener, Platform
from listener.client import Client, run_listener
from listener.platform.auth import Role, Users
from listener.platform.server import serve
from listener.process import loop_options
from listener.topics import JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED
from plugins.job_handler import Tick, job_handler

JOB = "workbook:bench"
MODES = ("process", "inprocess")
LISTENER_CLI = [sys.executable, "-m", "listener.cli"]
_ENDED = (JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED)

# The worker module `listener run` loads in process mode.
WORKER = '''\
"""The http benchmark's worker: job_handler with one tick; each handler notes when it started."""

import os
import time

from listener import Listener
from plugins.job_handler import job_handler

_STARTED = open(os.environ["BENCH_STARTED_FILE"], "a", buffering=1)  # line-buffered: a line is written whole


async def handler(event, tick):
    _STARTED.write(f"{event.context.job_id} {time.time()!r}\\n")
    await tick(50, "half")


listener = Listener("bench").use(job_handler("workbook:bench", handler))
'''


# -- measurements ---------------------------------------------------------------


@dataclass
class HttpResult(lifecycle.RunResult):
    """lifecycle's RunResult (path = the mode) and the CPU and peak RSS of the server and worker processes.

    cpu_s is this process's CPU (all threads) and loop_cpu_s its event-loop thread's: in inprocess mode that is the
    server, the listener and the client.
    """

    server_cpu_s: float | None = None
    worker_cpu_s: float | None = None
    server_rss_mib: float | None = None
    worker_rss_mib: float | None = None
    server_loop_cpu_s: float | None = None  # the main thread: the event loop
    worker_loop_cpu_s: float | None = None
    machine_cpu_s: float | None = None  # every process on the machine, ours included
    unrecorded: int = 0  # jobs whose handler start was not recorded

    def figures(self) -> dict[str, float | None]:
        figures = super().figures()
        per_job = 1e6 / self.jobs
        total_cpu = self.cpu_s + (self.server_cpu_s or 0.0) + (self.worker_cpu_s or 0.0)
        other_cpu = None if self.machine_cpu_s is None else max(0.0, self.machine_cpu_s - total_cpu)
        figures.update(
            cpu_per_wall=total_cpu / self.wall_s,
            other_cpu_per_wall=None if other_cpu is None else other_cpu / self.wall_s,
            bench_us_per_job=self.cpu_s * per_job,
            server_us_per_job=None if self.server_cpu_s is None else self.server_cpu_s * per_job,
            worker_us_per_job=None if self.worker_cpu_s is None else self.worker_cpu_s * per_job,
            server_rss_mib=self.server_rss_mib,
            worker_rss_mib=self.worker_rss_mib,
            bench_loop_busy=self.loop_cpu_s / self.wall_s,
            server_loop_busy=None if self.server_loop_cpu_s is None else self.server_loop_cpu_s / self.wall_s,
            worker_loop_busy=None if self.worker_loop_cpu_s is None else self.worker_loop_cpu_s / self.wall_s,
        )
        return figures


def _proc_cpu_s(pid: int, thread: int | None = None) -> float | None:
    """User + system CPU seconds of a live process, or of one of its threads (Linux /proc); None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _cpu_pair(pid: int) -> tuple[float | None, float | None]:
    """CPU seconds of a process and of its main thread: the event loop (the store's writer is another thread)."""
    return _proc_cpu_s(pid), _proc_cpu_s(pid, pid)


def _proc_peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return None


def _machine_busy_s() -> float | None:
    """CPU seconds all the machine's CPUs have spent not idle since boot (Linux /proc/stat)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait
    except (OSError, IndexError, ValueError):
        return None


def _diff(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _kind_cpu(cpu: Mapping[int, tuple[float | None, float | None]],
              pids: Sequence[int]) -> tuple[float | None, float | None]:
    """The CPU seconds of processes of one kind, added up, and the busiest one's event-loop thread."""
    pairs = [cpu[pid] for pid in pids if pid in cpu]
    totals = [total for total, _ in pairs if total is not None]
    loops = [loop for _, loop in pairs if loop is not None]
    return (sum(totals) if totals else None), _max_or_none(loops)


def _max_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


async def admin_token(users: Users) -> str:
    """An admin token: the first user's on a fresh database, else a new admin user's (a reused --db)."""
    token = await users.ensure_admin()
    if token is None:
        _, token = await users.create(f"bench-{uuid.uuid4().hex[:8]}", Role.ADMIN)
    return token


async def drive(url: str, token: str, args: argparse.Namespace, mode: str, run: int,
                started: Callable[[], Mapping[str, float]], children: Mapping[str, Sequence[int]]) -> HttpResult:
    """Create the jobs through a Client and wait for them on its event stream; `started` gives handler start times.

    `children`: kind ("server", "worker") → pids of the processes whose CPU and peak RSS to report. With several
    processes of a kind, their CPU adds up, and loop busy and peak RSS are the largest of them.
    """
    rate: float | None = args.steady
    max_seconds: float | None = getattr(args, "max_seconds", None)
    n = args.jobs if rate is None else max(1, round(rate * args.seconds))  # lowered to what was created
    all_created = anyio.Event()
    backlog = lifecycle.Backlog(getattr(args, "backlog", None))
    created: dict[str, float] = {}  # job id → when jobs.create was called here (time.time())
    ended: dict[str, float] = {}  # job id → when its job:completed (or failed/cancelled) arrived on the stream
    failed = 0

    async with Client(url, token=token) as client:
        head0 = await client.events.head()
        # calls=True: the creates go over the stream's socket (the worker channel), as the README recommends for a
        # client that creates many jobs and watches them.
        async with client.stream(after=head0, topics=_ENDED, calls=True) as stream:

            async def watch() -> None:
                nonlocal failed
                event: Event
                async for event in stream:
                    job_id = event.context.job_id
                    if event.context.job != JOB or job_id is None or job_id in ended:
                        continue
                    ended[job_id] = time.time()
                    backlog.ended(len(ended))
                    if event.topic != JOB_COMPLETED:
                        failed += 1
                    if len(ended) >= n and all_created.is_set():
                        return

            slots = anyio.Semaphore(args.concurrency)

            async def create_one() -> None:
                try:
                    called = time.time()  # from the call, as peers' latency counts from the enqueue call
                    job = await client.jobs.create(type="workbook", operation="bench")
                    created[job.id] = called
                finally:
                    slots.release()

            cpu0, loop0, machine0 = lifecycle.cpu_seconds(), time.thread_time(), _machine_busy_s()
            children0 = {pid: _cpu_pair(pid) for pids in children.values() for pid in pids}
            t0 = time.time()
            with anyio.fail_after(args.timeout):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    begin = anyio.current_time()
                    async with anyio.create_task_group() as creations:
                        for i in range(n):
                            if rate is not None:
                                await anyio.sleep_until(begin + i / rate)  # open loop: on schedule, however slow
                            elif max_seconds is not None and anyio.current_time() - begin >= max_seconds:
                                break
                            await backlog.wait_below(i)
                            await slots.acquire()
                            creations.start_soon(create_one)
                    n = len(created)
                    all_created.set()
                    if len(ended) >= n:
                        tg.cancel_scope.cancel()  # every job has ended already; watch() waits for no more
            t1 = max(ended.values())
            cpu, loop_cpu, machine = lifecycle.cpu_seconds() - cpu0, time.thread_time() - loop0, _machine_busy_s()
            children_cpu = {pid: (_diff(now[0], children0[pid][0]), _diff(now[1], children0[pid][1]))
                            for pid in children0 if (now := _cpu_pair(pid))}
        head1 = await client.events.head()

    starts = started()
    server_cpu, server_loop_cpu = _kind_cpu(children_cpu, children.get("server", ()))
    worker_cpu, worker_loop_cpu = _kind_cpu(children_cpu, children.get("worker", ()))
    return HttpResult(
        path=mode,
        run=run,
        jobs=n,
        wall_s=t1 - t0,
        events=head1 - head0,
        cpu_s=cpu,
        loop_cpu_s=loop_cpu,
        rss_mib=lifecycle.peak_rss_mib(),
        failed=failed,
        unrecorded=sum(1 for j in created if j not in starts),
        dispatch_ms=[(starts[j] - t) * 1000 for j, t in created.items() if j in starts],
        e2e_ms=[(ended[j] - t) * 1000 for j, t in created.items() if j in ended],
        server_cpu_s=server_cpu,
        worker_cpu_s=worker_cpu,
        server_loop_cpu_s=server_loop_cpu,
        worker_loop_cpu_s=worker_loop_cpu,
        machine_cpu_s=_diff(machine, machine0),
        server_rss_mib=_max_or_none(_proc_peak_rss_mib(pid) for pid in children.get("server", ())),
        worker_rss_mib=_max_or_none(_proc_peak_rss_mib(pid) for pid in children.get("worker", ())),
    )


# -- process mode: `listener serve` and `listener run` as subprocesses ---------------------

_CHILDREN: set[subprocess.Popen[bytes]] = set()
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # In the child, before exec: SIGKILL when this process dies, even by SIGKILL, so no server outlives the bench.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM (the CLI drains and exits), then SIGKILL after `timeout` seconds."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        _CHILDREN.discard(process)


@atexit.register
def _stop_all() -> None:
    for process in list(_CHILDREN):
        _stop(process, timeout=2.0)


@contextmanager
def spawned(args: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A `listener` subprocess with its output in `log` (a file: no pipe to fill up), stopped on exit."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LISTENER_")}  # only the flags given count
    with log.open("wb") as out:
        process = subprocess.Popen([*LISTENER_CLI, *args], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
                                   preexec_fn=_die_with_parent if _LIBC is not None else None)
    _CHILDREN.add(process)
    try:
        yield process
    finally:
        _stop(process)


async def wait_for_line(process: subprocess.Popen[bytes], log: Path, pattern: str, what: str,
                        timeout: float = 30.0) -> re.Match[str]:
    """Wait until the process has written a line matching `pattern`; fail with its output if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        if match := re.search(pattern, text):
            return match
        if process.poll() is not None or time.monotonic() > deadline:
            state = (f"exited with {process.returncode}" if process.returncode is not None
                     else f"was not ready in {timeout:g}s")
            tail = "\n".join(text.splitlines()[-20:])
            raise RuntimeError(f"{what} {state}; its output:\n{tail}")
        await anyio.sleep(0.05)


def read_started(path: Path) -> dict[str, float]:
    started: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            job_id, _, when = line.partition(" ")
            try:
                started.setdefault(job_id, float(when))
            except ValueError:
                continue
    return started


async def run_process(args: argparse.Namespace, run: int, writer: lifecycle.WriterStats) -> HttpResult:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="listener-http-bench-")))
        db = lifecycle.fresh_db(args, stack)
        async with Platform.open(db) as platform:
            token = await admin_token(Users(platform.store, platform.clock))

        servers, urls = [], []
        for r in range(args.replicas):  # replicas share one PostgreSQL database
            server_log = tmp / f"server{r}.log"
            servers.append(stack.enter_context(spawned(["serve", "--db", db, "--port", "0"], server_log)))
            urls.append((await wait_for_line(servers[-1], server_log, r"serving (http://127\.0\.0\.1:\d+)",
                                             "listener serve")).group(1))

        worker_py, started_file = tmp / "bench_worker.py", tmp / "started.txt"
        worker_py.write_text(WORKER)
        agent = f"bench-{uuid.uuid4().hex[:8]}"  # a new agent starts at the newest event, even on a reused --db
        workers = []
        for w in range(args.workers or args.replicas):
            # Spread over the replicas, each worker preferring its own; they share one agent, `ack` is the claim.
            worker_log, r = tmp / f"worker{w}.log", w % args.replicas
            preferred = ",".join(urls[r:] + urls[:r])
            workers.append(stack.enter_context(spawned(
                ["run", str(worker_py), "--url", preferred, "--agent", agent, "--concurrency",
                 str(args.worker_concurrency), "--grace", "5"],
                worker_log, env={"LISTENER_TOKEN": token, "BENCH_STARTED_FILE": str(started_file)})))
            await wait_for_line(workers[-1], worker_log, r"is listening", "listener run")

        return await drive(urls[0], token, args, "process", run, functools.partial(read_started, started_file),
                           {"server": [s.pid for s in servers], "worker": [w.pid for w in workers]})


# -- inprocess mode: serve and run_listener on this event loop ---------------------------


async def run_inprocess(args: argparse.Namespace, run: int, writer: lifecycle.WriterStats) -> HttpResult:
    started: dict[str, float] = {}

    async def handler(event: Event, tick: Tick) -> None:
        started[event.context.job_id or ""] = time.time()
        await tick(50, "half")

    listener = Listener("bench").use(job_handler(JOB, handler))
    with ExitStack() as stack:
        db = lifecycle.fresh_db(args, stack)
        async with Platform.open(db) as platform, anyio.create_task_group() as server_tg:
            writer.install(platform.store)
            users = Users(platform.store, platform.clock)
            token = await admin_token(users)
            port = await server_tg.start(functools.partial(serve, platform, port=0, users=users, shutdown_timeout=5))
            url = f"http://127.0.0.1:{port}"
            agent = f"bench-{uuid.uuid4().hex[:8]}"
            # The listener has its own Client, as it would in its own process.
            async with Client(url, token=token) as worker_client, anyio.create_task_group() as worker_tg:
                await worker_tg.start(functools.partial(run_listener, worker_client, listener, agent=agent,
                                                        concurrency=args.worker_concurrency, grace=5))
                result = await drive(url, token, args, "inprocess", run, lambda: started, {})
                worker_tg.cancel_scope.cancel()
            server_tg.cancel_scope.cancel()
    return result


RUNNERS: dict[str, Callable[[argparse.Namespace, int, lifecycle.WriterStats], Any]] = {
    "process": run_process,
    "inprocess": run_inprocess,
}


def measure(mode: str, args: argparse.Namespace, run: int, profiler: cProfile.Profile | None = None,
            writer_profiler: cProfile.Profile | None = None) -> HttpResult:
    writer = lifecycle.WriterStats(writer_profiler)

    async def main() -> HttpResult:
        result: HttpResult = await RUNNERS[mode](args, run, writer)
        return result

    if profiler is None:
        return anyio.run(main, backend_options=loop_options())
    result: HttpResult = profiler.runcall(anyio.run, main, backend_options=loop_options())
    return result


# -- output ---------------------------------------------------------------------

_LIFECYCLE_COLUMNS = {column[0]: column for column in lifecycle.COLUMNS}
COLUMNS: list[tuple[str, str, int, str]] = [
    # key, heading, width, format
    *(_LIFECYCLE_COLUMNS[key] for key in ("jobs_per_s", "events_per_s", "wall_s", "dispatch_p50_ms",
                                          "dispatch_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "cpu_per_wall")),
    ("other_cpu_per_wall", "other", 6, ".2f"),
    ("bench_us_per_job", "bench us", 9, ",.0f"),
    ("server_us_per_job", "srv us", 7, ",.0f"),
    ("worker_us_per_job", "wrk us", 7, ",.0f"),
    ("bench_loop_busy", "bench lp", 9, ".0%"),
    ("server_loop_busy", "srv lp", 7, ".0%"),
    ("worker_loop_busy", "wrk lp", 7, ".0%"),
    _LIFECYCLE_COLUMNS["rss_mib"],
    ("server_rss_mib", "srv MiB", 8, ".0f"),
    ("worker_rss_mib", "wrk MiB", 8, ".0f"),
]


def row(label: str, run: str, figures: Mapping[str, float | None]) -> str:
    # lifecycle.row with these columns.
    cells = [f"{label:<14}", f"{run:>6}"]
    for key, _, width, fmt in COLUMNS:
        value = figures.get(key)
        cells.append(f"{'-' if value is None else format(value, fmt):>{width}}")
    return " ".join(cells)


def medians(results: Sequence[HttpResult]) -> dict[str, float | None]:
    # lifecycle.medians with these columns.
    out: dict[str, float | None] = {}
    for key, *_ in COLUMNS:
        values = [v for r in results if (v := r.figures()[key]) is not None]
        out[key] = statistics.median(values) if values else None
    return out


def label(args: argparse.Namespace, mode: str) -> str:
    return mode if args.steady is None else f"{mode} @{args.steady:g}/s"


def print_table(args: argparse.Namespace, results: Sequence[HttpResult]) -> None:
    heading = " ".join([f"{'mode':<14}", f"{'run':>6}", *(f"{h:>{w}}" for _, h, w, _ in COLUMNS)])
    print(heading)
    print("-" * len(heading))
    for mode in MODES:
        mine = [r for r in results if r.path == mode]
        if not mine:
            continue
        for r in mine:
            print(row(label(args, mode), str(r.run), r.figures()))
        print(row(label(args, mode), "median", medians(mine)))
        print()
    cpus = os.cpu_count() or 1
    notes = (
        "disp = jobs.create called here → handler started in the worker (includes job_handler's ack request); "
        "e2e = create called → job:completed received on this process's event stream; latencies in ms, per job. "
        f"cpu/wall = CPU seconds of the benchmark's processes per wall second ({cpus} CPU(s): at most {cpus}.0); "
        "other = the same for the machine's other processes: when it is high, the figures are low. "
        "bench us / srv us / wrk us = CPU µs per job of this process (inprocess: server, listener and client in one) "
        "/ of `listener serve` / of `listener run`. bench lp / srv lp / wrk lp = share of the wall time each "
        "process's event-loop thread was running (near 100%: that loop is the bottleneck). "
        "RSS MiB = peak RSS of this process; srv MiB / wrk MiB of the subprocesses (the largest, when several). "
        "With several servers or workers, srv us / wrk us add theirs up and srv lp / wrk lp show the busiest."
    )
    if args.steady is not None:
        notes += f" Steady load: jobs/s is the offered {args.steady:g}/s unless the system falls behind."
    print(textwrap.fill(notes, width=118))
    failed, unrecorded = sum(r.failed for r in results), sum(r.unrecorded for r in results)
    if failed:
        print(f"WARNING: {failed} job(s) ended failed or cancelled instead of complete.")
    if unrecorded:
        print(f"WARNING: the handler start of {unrecorded} job(s) was not recorded; they are not in disp.")


def header_lines(args: argparse.Namespace) -> list[str]:
    # lifecycle's first two lines (versions), then this benchmark's settings.
    lines = lifecycle.header_lines(argparse.Namespace(**vars(args), synchronous="NORMAL"))[:2]
    load = (f"bulk: {args.jobs} jobs, {args.concurrency} creations in flight" if args.steady is None else
            f"steady: {args.steady:g} jobs/s for {args.seconds:g}s, at most {args.concurrency} creations in flight")
    lines[1] += f", aiohttp {version('aiohttp')}"
    if args.mode == "process":
        load += f"; {args.replicas} replica(s), {args.workers or args.replicas} worker(s)"
    if args.max_seconds is not None and args.steady is None:
        load += f", creating for at most {args.max_seconds:g}s"
    if args.backlog is not None and args.steady is None:
        load += f", at most {args.backlog} jobs not ended"
    lines.append(f"mode={args.mode} runs={args.runs} worker-concurrency={args.worker_concurrency} {load}; "
                 f"db={args.db or 'fresh temp file per run'}")
    return lines


# -- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="process: `listener serve` and `listener run` subprocesses (default); "
                             "inprocess: both in this process")
    parser.add_argument("--jobs", type=int, default=2000,
                        help="jobs per run in bulk (default 2000; with --steady: RATE × --seconds)")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are the median (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="job creations in flight (default 32)")
    parser.add_argument("--worker-concurrency", type=int, default=32,
                        help="the listener's concurrency: events handled at once (default 32)")
    parser.add_argument("--steady", type=float, default=None, metavar="RATE",
                        help="instead of in bulk, create jobs one by one at RATE per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long --steady creates jobs (default 5)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="process mode: `listener serve` replicas (by default each with its own worker); more "
                             "than one needs --db postgresql://... (default 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="process mode: `listener run` workers, spread over the replicas, all one agent "
                             "(default: one per replica)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="bulk: stop creating jobs after this many seconds; the run counts the jobs created "
                             "(default: create all --jobs)")
    parser.add_argument("--backlog", type=int, default=None,
                        help="bulk: create no more while this many jobs are created but not ended (default: no "
                             "limit but --concurrency creations in flight)")
    parser.add_argument("--db", type=str, default=None,
                        help="database (path or URL) to use for every run (default: a fresh temp file per run)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one run may take (default 60)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the runs, run the inprocess mode once under cProfile and print the hot spots")
    parser.add_argument("--top", type=int, default=25, help="functions to show per profile table (default 25)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    for name in ("jobs", "runs", "concurrency", "worker_concurrency", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.steady is not None and (args.steady <= 0 or args.seconds <= 0):
        parser.error("--steady and --seconds must be positive")
    if args.profile:
        if args.mode == "process":
            parser.error("--profile profiles the inprocess mode (cProfile sees only this process)")
        args.mode, args.runs = "inprocess", 1
    args.mode = args.mode or "process"
    return args


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwind as Ctrl-C does, so the subprocesses are stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    for line in header_lines(args):
        print(line)
    print()

    results: list[HttpResult] = []
    try:
        if args.profile:
            print("Profiling one inprocess run (figures are slowed by the profiler).\n")
            loop_profiler, writer_profiler = cProfile.Profile(), cProfile.Profile()
            results.append(measure(args.mode, args, 1, loop_profiler, writer_profiler))
            print_table(args, results)
            lifecycle.print_profile("inprocess: event-loop thread (server, listener, client)", loop_profiler,
                                    args.top)
            lifecycle.print_profile("inprocess: writer thread (SqliteStore batches)", writer_profiler, args.top)
        else:
            for run in range(1, args.runs + 1):
                results.append(measure(args.mode, args, run))
            print_table(args, results)
    except TimeoutError:
        print(f"A run took longer than --timeout {args.timeout:g}s; giving up.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench/remote.py: {exc}", file=sys.stderr)
        return 1

    print(f"\npeak RSS: {lifecycle.peak_rss_mib():.0f} MiB")
    if args.json:
        doc = {
            "header": header_lines(args),
            "args": vars(args),
            "runs": [
                {**{k: v for k, v in asdict(r).items() if k not in ("dispatch_ms", "e2e_ms")},
                 **r.figures()}
                for r in results
            ],
            "median": medians(results),
            "peak_rss_mib": lifecycle.peak_rss_mib(),
        }
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
