"""`make bench`: every scenario of issue 8 in one run, one table, written to docs/performance.md with a chart.

Each scenario runs in a child process of its own (so its peak RSS is its own), its figures the median of
`--runs` runs (3; `--quick`: 1, with shorter runs and smaller stores). Ratios (a figure as a fraction of its
limit, ours against a peer's) are computed from the medians of this one run, never across runs.

    make bench                                  # sets itself up (the bench extra), then this
    .venv/bin/python bench/suite.py --quick     # about two minutes
    .venv/bin/python bench/suite.py --only lifecycle-sqlite --only limits --no-write

The scenarios reuse bench/lifecycle.py (in-process lifecycle and latency), bench/remote.py (`listener serve` and
`listener run` processes), bench/limits.py, bench/fanout.py, bench/growth.py and bench/peers.py; each of those
also runs alone with its own options and more detailed figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform as pyplatform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_PG = "postgresql://127.0.0.1/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379"

# -- sizes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    runs: int
    bulk_seconds: float  # in-process bulk: seconds of creating jobs per run
    remote_seconds: float  # remote bulk: the same
    steady_seconds: float  # the 200/s latency runs
    limit_seconds: float
    fanout_seconds: float
    list_rows: int
    list_seconds: float  # per run of list queries, at most (and at most 200 queries)
    soak_jobs: int
    soak_seconds: float  # the soak's cap
    peer_bulk_seconds: float
    peer_steady_seconds: float
    rate: float = 200.0
    backlog: int = 256  # bulk: no more creations while this many jobs wait (ours: not ended; peers: not started)


FULL = Sizes(runs=3, bulk_seconds=3.0, remote_seconds=2.5, steady_seconds=3.0, limit_seconds=1.5,
             fanout_seconds=2.0, list_rows=1_000_000, list_seconds=3.0, soak_jobs=100_000, soak_seconds=45.0,
             peer_bulk_seconds=3.0, peer_steady_seconds=2.0)
QUICK = Sizes(runs=1, bulk_seconds=1.5, remote_seconds=1.0, steady_seconds=2.0, limit_seconds=1.0,
              fanout_seconds=1.5, list_rows=200_000, list_seconds=2.0, soak_jobs=10_000, soak_seconds=10.0,
              peer_bulk_seconds=1.5, peer_steady_seconds=1.5)


# -- rows -------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: per-run figures (the table shows their medians) and what they compare with."""

    key: str
    scenario: str
    backend: str
    group: str  # "listener", "limit" or "peer"
    runs: list[dict[str, float | None]] = field(default_factory=list)
    rss_mib: float | None = None
    limit: str | None = None  # the limit row's key this row is a fraction of
    note: str = ""

    def median(self, name: str) -> float | None:
        values = [v for r in self.runs if (v := r.get(name)) is not None]
        return statistics.median(values) if values else None


@dataclass
class Outcome:
    """What one scenario's child process hands back."""

    rows: list[Row] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


# -- the scenarios (each runs in a child process) -----------------------------------------


def _lifecycle_args(extra: Sequence[str]) -> argparse.Namespace:
    import lifecycle

    return lifecycle.parse_args(["--path", "job_handler", "--jobs", "1000000", "--timeout", "180", *extra])


def _lifecycle(sizes: Sizes, backend: str, db: str | None, keys: int = 0) -> Outcome:
    import lifecycle

    args = _lifecycle_args(["--max-seconds", str(sizes.bulk_seconds), "--backlog", str(sizes.backlog),
                            *(["--db", db] if db else []), *(["--keys", str(keys)] if keys else [])])
    results = [lifecycle.measure("job_handler", args, run) for run in range(1, sizes.runs + 1)]
    key = f"lifecycle-{backend}" + ("-fair" if keys else "")
    what = "lifecycle in-process (job_handler), bulk" + (f", priorities and {keys} keys limited" if keys else "")
    row = Row(key, what, _BACKEND[backend], "listener", limit=backend, rss_mib=max(r.rss_mib for r in results))
    row.runs = [{"jobs_per_s": r.jobs_per_s, "events_per_s": r.events_per_s} for r in results]
    failed = sum(r.failed for r in results)
    row.note = f"{statistics.median(r.jobs for r in results):,.0f} jobs per run" + \
        (f"; {failed} failed" if failed else "")
    return Outcome([row])


def _latency_inprocess(sizes: Sizes) -> Outcome:
    import lifecycle

    args = _lifecycle_args(["--steady", str(sizes.rate), "--seconds", str(sizes.steady_seconds)])
    results = [lifecycle.measure("job_handler", args, run) for run in range(1, sizes.runs + 1)]
    return Outcome(_latency_rows("latency-inprocess", "in-process", results, sizes.rate,
                                 max(r.rss_mib for r in results)))


def _latency_rows(key: str, where: str, results: Sequence[Any], rate: float, rss: float | None) -> list[Row]:
    from lifecycle import percentile

    start = Row(f"{key}-start", f"latency @{rate:g}/s {where}: create → handler start", "SQLite", "listener",
                rss_mib=rss)
    end = Row(f"{key}-complete", f"latency @{rate:g}/s {where}: create → job:completed", "SQLite", "listener",
              rss_mib=rss)
    for r in results:
        start.runs.append({"jobs_per_s": r.jobs_per_s, "events_per_s": r.events_per_s,
                           "p50_ms": percentile(r.dispatch_ms, 50), "p99_ms": percentile(r.dispatch_ms, 99)})
        end.runs.append({"jobs_per_s": r.jobs_per_s, "events_per_s": r.events_per_s,
                         "p50_ms": percentile(r.e2e_ms, 50), "p99_ms": percentile(r.e2e_ms, 99)})
    return [start, end]


def _remote_args(extra: Sequence[str]) -> argparse.Namespace:
    import remote

    return remote.parse_args(["--mode", "process", "--jobs", "1000000", "--timeout", "120", *extra])


def _remote(sizes: Sizes, backend: str, db: str | None, workers: int, replicas: int) -> Outcome:
    import remote

    args = _remote_args(["--max-seconds", str(sizes.remote_seconds), "--backlog", str(sizes.backlog),
                         "--workers", str(workers),
                         "--replicas", str(replicas), *(["--db", db] if db else [])])
    results = [remote.measure("process", args, run) for run in range(1, sizes.runs + 1)]
    what = (f"{replicas} replicas × 1 worker" if replicas > 1 else f"{workers} worker{'s' if workers > 1 else ''}")
    row = Row(f"remote-{backend}-{workers}w{replicas}r", f"remote: listener serve + {what}, bulk",
              _BACKEND[backend], "listener", limit=backend)
    row.runs = [{"jobs_per_s": r.jobs_per_s, "events_per_s": r.events_per_s} for r in results]
    servers = [f["server_rss_mib"] for r in results if (f := r.figures())["server_rss_mib"] is not None]
    workers_rss = [f["worker_rss_mib"] for r in results if (f := r.figures())["worker_rss_mib"] is not None]
    row.rss_mib = max(servers) if servers else None
    row.note = f"peak RSS of the server; worker {max(workers_rss):.0f} MiB" if workers_rss else ""
    return Outcome([row])


def _latency_remote(sizes: Sizes) -> Outcome:
    import remote

    args = _remote_args(["--steady", str(sizes.rate), "--seconds", str(sizes.steady_seconds)])
    results = [remote.measure("process", args, run) for run in range(1, sizes.runs + 1)]
    servers = [f["server_rss_mib"] for r in results if (f := r.figures())["server_rss_mib"] is not None]
    return Outcome(_latency_rows("latency-remote", "remote, 1 worker", results, sizes.rate,
                                 max(servers) if servers else None))


def _limits(sizes: Sizes, pg: str) -> Outcome:
    import limits

    measured = limits.measure(list(limits.KEYS), sizes.runs, sizes.limit_seconds, pg)
    titles = {
        "sqlite_commit": ("limit: raw job writes (4 transactions), a commit each", "SQLite"),
        "sqlite_group": (f"limit: raw job writes, group commit of {limits.GROUP} jobs", "SQLite"),
        "pg_commit": (f"limit: raw job writes (4 transactions), a commit each, {limits.PG_POOL} connections",
                      "PostgreSQL"),
        "pg_group": (f"limit: raw job writes, group commit, {limits.GROUP_LANES} writers × {limits.GROUP} jobs",
                     "PostgreSQL"),
        "pyee": ("limit: raw pyee emit to 100 handlers", "in-memory"),
    }
    out = Outcome(info={"pg": measured.pg})
    for key, runs in measured.runs.items():
        title, backend = titles[key]
        out.rows.append(Row(f"limit-{key}", title, backend, "limit",
                            runs=[{k: v for k, v in r.items() if k in ("jobs_per_s", "events_per_s")} for r in runs]))
    out.skipped += [f"limit {key}: {why}" for key, why in measured.skipped.items()]
    return out


def _fanout(sizes: Sizes) -> Outcome:
    import fanout

    results = fanout.measure(sizes.runs, sizes.fanout_seconds)
    from lifecycle import peak_rss_mib

    row = Row("fanout", f"fan-out: {fanout.LISTENERS} listeners with distinct filters", "SQLite",
              "listener", limit="pyee", rss_mib=peak_rss_mib(),
              runs=[{"events_per_s": r["events_per_s"]} for r in results])
    row.note = f"{statistics.median(r['events'] for r in results):,.0f} events per run"
    return Outcome([row])


def _list(sizes: Sizes, backend: str, pg: str) -> Outcome:
    import growth
    from lifecycle import peak_rss_mib

    out = growth.measure_list(backend, sizes.list_rows, sizes.runs, 200, sizes.list_seconds,
                              pg if backend == "postgres" else None)
    row = Row(f"list-{backend}", f"growth: list by status and type, {out['rows']:,} jobs", _BACKEND[backend],
              "listener", rss_mib=peak_rss_mib(),
              runs=[{"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]} for r in out["runs"]])
    row.note = (f"{statistics.median(r['queries'] for r in out['runs']):.0f} queries per run; "
                f"seeded in {out['seed_s']:.0f}s")
    return Outcome([row], info={"seed_s": out["seed_s"]})


def _soak(sizes: Sizes) -> Outcome:
    import anyio
    import growth
    from lifecycle import peak_rss_mib

    from listener.process import loop_options

    r = anyio.run(growth.soak, sizes.soak_jobs, sizes.soak_seconds, backend_options=loop_options())
    capped = r["jobs"] < r["planned"]
    title = (f"soak: {r['jobs']:,.0f} jobs in-process, 64 at a time; RSS {r['rss_10_mib']:.0f} MiB at "
             f"{r['rss_10_jobs']:,.0f} jobs → {r['rss_end_mib']:.0f} MiB ({r['rss_growth']:+.1%})")
    row = Row("soak", title, "SQLite", "listener", limit="sqlite", rss_mib=peak_rss_mib(),
              runs=[{"jobs_per_s": r["jobs_per_s"], "rss_growth": r["rss_growth"]}])
    row.note = (f"one run; stopped at the {sizes.soak_seconds:g}s cap before {r['planned']:,.0f} jobs" if capped
                else "one run") + ("; the SQLite store keeps its last 10,000 jobs in memory, so RSS rises over the "
                                   "first 10,000 by design: the 10 % mark of 100,000 jobs is past that")
    return Outcome([row], info=r)


def _peer(sizes: Sizes, key: str, pg: str, redis: str) -> Outcome:
    import anyio
    import peers

    from listener.process import loop_options

    peer = peers.PEERS[key]
    r = anyio.run(lambda: peers.measure_peer(
        peer, runs=sizes.runs, jobs=1_000_000, max_seconds=sizes.peer_bulk_seconds, rate=sizes.rate,
        seconds=sizes.peer_steady_seconds, redis_url=redis, pg_url=pg, backlog=sizes.backlog),
        backend_options=loop_options())
    if r.skipped:
        return Outcome(skipped=[f"{peer.name} ({peer.broker}): {r.skipped}"])
    name = f"peer: {peer.name} {r.version}"
    bulk = Row(f"peer-{key}", f"{name}, bulk", peer.broker, "peer", rss_mib=r.rss_mib,
               runs=[{"jobs_per_s": b["jobs_per_s"]} for b in r.bulk])
    bulk.note = f"{peer.notes}; {statistics.median(b['jobs'] for b in r.bulk):,.0f} jobs per run" + \
        (f"; {r.durability}" if r.durability else "")
    steady = Row(f"peer-{key}-latency", f"{name}, latency @{sizes.rate:g}/s: enqueue → task start", peer.broker,
                 "peer", rss_mib=r.rss_mib,
                 runs=[{"jobs_per_s": s["jobs_per_s"], "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"]}
                       for s in r.steady])
    return Outcome([bulk, steady], info={"version": r.version, "durability": r.durability,
                                         "peer": f"{peer.name} {r.version}"})


_BACKEND = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class Scenario:
    key: str
    run: Callable[[Sizes, argparse.Namespace], Outcome]
    timeout: float = 300.0


# Ordered so that what the targets compare runs close together in time (a shared machine's load drifts): our
# single-worker and in-process figures, then the peers, then the rest.
SCENARIOS: list[Scenario] = [
    Scenario("limits", lambda s, a: _limits(s, a.db)),
    Scenario("lifecycle-sqlite", lambda s, a: _lifecycle(s, "sqlite", None)),
    Scenario("lifecycle-postgres", lambda s, a: _lifecycle(s, "postgres", a.db)),
    # The same claim path with priorities and per-key limits in use, beside the plain one above.
    Scenario("lifecycle-sqlite-fair", lambda s, a: _lifecycle(s, "sqlite", None, keys=100)),
    Scenario("lifecycle-postgres-fair", lambda s, a: _lifecycle(s, "postgres", a.db, keys=100)),
    Scenario("remote-sqlite-1", lambda s, a: _remote(s, "sqlite", None, 1, 1)),
    Scenario("remote-postgres-1", lambda s, a: _remote(s, "postgres", a.db, 1, 1)),
    Scenario("latency-inprocess", lambda s, a: _latency_inprocess(s)),
    Scenario("latency-remote", lambda s, a: _latency_remote(s)),
    *(Scenario(f"peer-{key}", lambda s, a, key=key: _peer(s, key, a.db, a.redis))  # type: ignore[misc]
      for key in ("taskiq", "arq", "saq", "celery", "dramatiq", "streaq", "huey", "saq-pg", "procrastinate",
                  "pgqueuer")),
    Scenario("remote-sqlite-2", lambda s, a: _remote(s, "sqlite", None, 2, 1)),
    Scenario("remote-postgres-2", lambda s, a: _remote(s, "postgres", a.db, 2, 1)),
    Scenario("remote-postgres-2-replicas", lambda s, a: _remote(s, "postgres", a.db, 2, 2)),
    Scenario("fanout", lambda s, a: _fanout(s)),
    Scenario("list-sqlite", lambda s, a: _list(s, "sqlite", a.db)),
    Scenario("list-postgres", lambda s, a: _list(s, "postgres", a.db)),
    Scenario("soak", lambda s, a: _soak(s), timeout=240.0),
]
_BY_KEY = {s.key: s for s in SCENARIOS}
# The table's order (the scenarios run in another): Listener's rows, the limits, the peers.
_DISPLAY = ["lifecycle-", "remote-sqlite-1w", "remote-sqlite-2w", "remote-postgres-1w", "remote-postgres-2w1r",
            "remote-postgres-2w2r", "latency-inprocess", "latency-remote", "fanout", "list-", "soak", "limit-",
            "peer-"]


def _display_rank(row: Row) -> tuple[int, int]:
    group = {"listener": 0, "limit": 1, "peer": 2}[row.group]
    return group, next((i for i, prefix in enumerate(_DISPLAY) if row.key.startswith(prefix)), len(_DISPLAY))


def _child(args: argparse.Namespace) -> int:
    """Run one scenario and write its Outcome as JSON to --child-out."""
    sys.path.insert(0, str(HERE))
    from listener import tune_gc

    tune_gc()  # as listener serve / run / dev do (README, "Performance"); the remote rows' processes do it themselves
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = Sizes(**{**asdict(sizes), "runs": args.runs})
    outcome = _BY_KEY[args.child].run(sizes, args)
    Path(args.child_out).write_text(json.dumps(asdict(outcome)))
    return 0


# -- the parent: run the children, then the table -----------------------------------------


def _machine_busy_s() -> float | None:
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Ran:
    key: str
    seconds: float
    other_cpu: float | None  # CPUs the machine's other processes (PostgreSQL and Redis included) kept busy
    error: str | None = None


def run_scenario(scenario: Scenario, args: argparse.Namespace, log_dir: Path) -> tuple[Outcome, Ran]:
    out_file, log = log_dir / f"{scenario.key}.json", log_dir / f"{scenario.key}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", scenario.key, "--child-out", str(out_file),
               "--db", args.db, "--redis", args.redis]
    if args.quick:
        command.append("--quick")
    if args.runs is not None:
        command += ["--runs", str(args.runs)]
    t0, busy0, ours0 = time.perf_counter(), _machine_busy_s(), _children_cpu_s()
    error = None
    with log.open("wb") as out:
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=scenario.timeout, cwd=ROOT, check=False)
            if done.returncode != 0:
                error = f"exited with {done.returncode}"
        except subprocess.TimeoutExpired:
            error = f"took longer than {scenario.timeout:g}s"
    seconds = time.perf_counter() - t0
    busy1, ours = _machine_busy_s(), _children_cpu_s() - ours0
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - ours) / seconds)
    if error is not None:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        return Outcome(), Ran(scenario.key, seconds, other, f"{error}: {' | '.join(tail)}")
    data = json.loads(out_file.read_text())
    outcome = Outcome([Row(**r) for r in data["rows"]], data["info"], data["skipped"])
    return outcome, Ran(scenario.key, seconds, other)


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _loop() -> str:
    from listener.process import LOOP_ENV, event_loop

    loop = event_loop()
    if loop == "uvloop":
        return (f"every process on uvloop {_pkg('uvloop')} (the `fast` extra; Taskiq's worker picks it too), "
                "LISTENER_LOOP=asyncio for the standard loop")
    chosen = os.environ.get(LOOP_ENV, "").strip().lower() == "asyncio"
    why = f"{LOOP_ENV}=asyncio" if chosen else "uvloop is not installed"
    return f"every process on asyncio's standard loop ({why})"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return pyplatform.processor() or "?"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return None


def header(args: argparse.Namespace, pg: dict[str, str], redis: dict[str, str], sizes: Sizes) -> list[str]:
    mem = _memory_gib()
    lines = [
        f"Machine: {os.cpu_count()} CPU(s) ({_cpu_model()}), {mem:.0f} GiB RAM, {pyplatform.platform(terse=True)}; "
        f"Python {pyplatform.python_version()} ({pyplatform.python_implementation()})" if mem else
        f"Machine: {os.cpu_count()} CPU(s) ({_cpu_model()}); Python {pyplatform.python_version()}",
        f"Listener {_pkg('listener')}: anyio {_pkg('anyio')}, pydantic {_pkg('pydantic')}, pyee {_pkg('pyee')}, "
        f"aiohttp {_pkg('aiohttp')}, asyncpg {_pkg('asyncpg')}; {_loop()}",
        f"Durability: SQLite {sqlite3.sqlite_version} in WAL mode with synchronous=NORMAL (DESIGN.md §4: a killed "
        f"process loses nothing); PostgreSQL {pg.get('server_version', '?').split()[0]} with "
        f"synchronous_commit={pg.get('synchronous_commit', '?')}, fsync={pg.get('fsync', '?')}; every transition "
        "and its event committed before the call returns",
    ]
    if redis:
        persistence = "no persistence: a restart loses every queued job" if redis.get("appendonly") == "no" and \
            not redis.get("save") else f"appendonly={redis.get('appendonly')} save='{redis.get('save')}'"
        lines.append(f"Peers' Redis {redis.get('version', '?')}: {persistence} (as it is configured here)")
    lines.append(f"Runs: each figure the median of {sizes.runs} run(s){' (--quick)' if args.quick else ''}; "
                 f"bulk runs create jobs for {sizes.bulk_seconds:g}s in-process / {sizes.remote_seconds:g}s remote / "
                 f"{sizes.peer_bulk_seconds:g}s peers, at most {sizes.backlog} waiting, and wait for them all; "
                 f"latency runs create {sizes.rate:g} jobs/s one by one for {sizes.steady_seconds:g}s "
                 f"({sizes.peer_steady_seconds:g}s peers)")
    return lines


COLUMNS = ["scenario", "backend", "jobs/s", "events/s", "p50 ms", "p99 ms", "peak RSS MiB", "of limit", "ours/peer"]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


class Table:
    """The medians, the ratios between rows, and their rendering."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.by_key = {r.key: r for r in rows}

    def get(self, key: str, name: str) -> float | None:
        row = self.by_key.get(key)
        return None if row is None else row.median(name)

    def limit_of(self, row: Row) -> float | None:
        """The row's figure as a fraction of its limit: the best raw figure of its backend (or pyee)."""
        if row.limit is None:
            return None
        if row.limit == "pyee":
            ours, limit = row.median("events_per_s"), self.get("limit-pyee", "events_per_s")
        else:
            keys = ("limit-sqlite_commit", "limit-sqlite_group") if row.limit == "sqlite" else \
                ("limit-pg_commit", "limit-pg_group")
            figures = [v for k in keys if (v := self.get(k, "jobs_per_s")) is not None]
            ours, limit = row.median("jobs_per_s"), max(figures) if figures else None
        return None if ours is None or not limit else ours / limit

    def versus(self, row: Row) -> str:
        """A peer row: our figure ÷ the peer's, in-process and remote (jobs/s), or p99 latencies."""
        if row.group != "peer":
            return ""
        pg = row.backend == "PostgreSQL"
        if row.key.endswith("-latency"):
            peer = row.median("p99_ms")
            if not peer:
                return "-"
            ours = [(label, self.get(key, "p99_ms")) for label, key in
                    (("in-proc", "latency-inprocess-start"), ("remote", "latency-remote-start"))]
            return " · ".join(f"{label} {_ratio(v / peer)}" for label, v in ours if v is not None) or "-"
        peer = row.median("jobs_per_s")
        if not peer:
            return "-"
        backend = "postgres" if pg else "sqlite"
        ours = [("in-proc", self.get(f"lifecycle-{backend}", "jobs_per_s")),
                ("remote", self.get(f"remote-{backend}-1w1r", "jobs_per_s"))]
        return " · ".join(f"{label} {_ratio(v / peer)}" for label, v in ours if v is not None) or "-"

    def cells(self, row: Row) -> list[str]:
        fraction = self.limit_of(row)
        return [row.scenario, row.backend, _fmt(row.median("jobs_per_s"), ",.0f"),
                _fmt(row.median("events_per_s"), ",.0f"), _fmt_ms(row.median("p50_ms")),
                _fmt_ms(row.median("p99_ms")), _fmt(row.rss_mib, ".0f"),
                "-" if fraction is None else f"{fraction:.0%}" if fraction >= 0.1 else f"{fraction:.1%}"
                if fraction >= 0.01 else f"{fraction:.2%}", self.versus(row) or "-"]

    def markdown(self) -> str:
        body = [self.cells(r) for r in self.rows]
        widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(COLUMNS)]
        right = {2, 3, 4, 5, 6, 7}

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                     for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

        rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                              for i, w in enumerate(widths)) + "|"
        return "\n".join([line(COLUMNS), rule, *(line(b) for b in body)])

    # -- the targets --------------------------------------------------------

    def targets(self) -> list[str]:
        out = []
        peers = [r for r in self.rows if r.group == "peer" and not r.key.endswith("-latency")]
        fastest = max(peers, key=lambda r: r.median("jobs_per_s") or 0.0, default=None)
        pg_peers = [r for r in peers if r.backend == "PostgreSQL"]
        # Issue 15 names pgqueuer as the PostgreSQL peer to beat; without it, the fastest PostgreSQL peer that ran.
        pg_ref = self.by_key.get("peer-pgqueuer") or max(pg_peers, key=lambda r: r.median("jobs_per_s") or 0.0,
                                                         default=None)
        lat_peers = [r for r in self.rows if r.group == "peer" and r.key.endswith("-latency")]
        best_lat = min(lat_peers, key=lambda r: r.median("p99_ms") or float("inf"), default=None)

        def check(label: str, ours: float | None, bar: float | None, higher: bool, unit: str, why: str) -> None:
            if ours is None or bar is None:
                out.append(f"- {label}: not measured ({'ours not measured in this run' if ours is None else why})")
                return
            met = ours >= bar if higher else ours < bar
            gap = ("met" if met else
                   f"missed: {ours:,.1f} {unit} is {ours / bar:.0%} of the {bar:,.1f} {unit} needed" if higher else
                   f"missed: {ours:,.1f} {unit} is {ours / bar:.1f}× the {bar:,.1f} {unit} allowed")
            out.append(f"- {label}: ours {ours:,.1f} {unit}, target {'≥' if higher else '<'} {bar:,.1f} {unit}: "
                       f"**{gap}**")

        def name(row: Row) -> str:
            return row.scenario.split(",")[0].removeprefix("peer: ")

        pg_label = "-" if pg_ref is None else name(pg_ref) if pg_ref.key == "peer-pgqueuer" else \
            f"the fastest PostgreSQL peer ({name(pg_ref)}; pgqueuer did not run)"

        check(f"in-process lifecycle on SQLite ≥ 2× the fastest peer ({name(fastest) if fastest else '-'})",
              self.get("lifecycle-sqlite", "jobs_per_s"),
              2 * (fastest.median("jobs_per_s") or 0) if fastest else None, True, "jobs/s", "no peer ran")
        check(f"in-process lifecycle on PostgreSQL ≥ 2× {pg_label}", self.get("lifecycle-postgres", "jobs_per_s"),
              2 * (pg_ref.median("jobs_per_s") or 0) if pg_ref else None, True, "jobs/s", "no PostgreSQL peer ran")
        check(f"remote, 1 worker on SQLite ≥ the fastest peer, whatever its backend "
              f"({name(fastest) if fastest else '-'})", self.get("remote-sqlite-1w1r", "jobs_per_s"),
              fastest.median("jobs_per_s") if fastest else None, True, "jobs/s", "no peer ran")
        check(f"remote, 1 worker on PostgreSQL ≥ 1.5× {pg_label}", self.get("remote-postgres-1w1r", "jobs_per_s"),
              1.5 * (pg_ref.median("jobs_per_s") or 0) if pg_ref else None, True, "jobs/s", "no PostgreSQL peer ran")
        check("remote on SQLite: 2 workers faster than 1", self.get("remote-sqlite-2w1r", "jobs_per_s"),
              self.get("remote-sqlite-1w1r", "jobs_per_s"), True, "jobs/s", "not measured in this run")
        check("latency @200/s in-process, create → handler start p99 < 2 ms",
              self.get("latency-inprocess-start", "p99_ms"), 2.0, False, "ms", "not measured in this run")
        check(f"latency @200/s remote, create → handler start p99 ≤ 1.5× the best peer's "
              f"({name(best_lat) if best_lat else '-'})", self.get("latency-remote-start", "p99_ms"),
              1.5 * (best_lat.median("p99_ms") or 0) if best_lat else None, False, "ms", "no peer ran")
        for backend in ("sqlite", "postgres"):
            if f"list-{backend}" in self.by_key:
                check(f"list by status and type, {self.by_key[f'list-{backend}'].scenario.split(', ')[-1]} "
                      f"on {_BACKEND[backend]}: p99 < 20 ms", self.get(f"list-{backend}", "p99_ms"), 20.0, False,
                      "ms", "not measured in this run")
        growth = self.get("soak", "rss_growth")
        check("soak: RSS grows < 10 % from 10 % to 100 % of the jobs",
              None if growth is None else growth * 100, 10.0, False, "%", "not measured in this run")
        return out


def chart(table: Table, path: Path) -> str | None:
    """Bar charts of the table's throughput and latency figures; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    colors = {"listener": "#2a6f97", "limit": "#adb5bd", "peer": "#e76f51"}
    bulk = [r for r in table.rows if r.median("jobs_per_s") and not r.key.startswith(("latency", "soak"))
            and not r.key.endswith("-latency")]
    latency = [r for r in table.rows if r.key.endswith(("-start", "-latency")) and r.median("p99_ms")]
    fig, axes = plt.subplots(2, 1, figsize=(11, 0.32 * (len(bulk) + len(latency)) + 2.6),
                             gridspec_kw={"height_ratios": [max(len(bulk), 1), max(len(latency), 1)]})
    ax = axes[0]
    labels = [f"{_short(r)} ({r.backend})" for r in bulk]
    values = [r.median("jobs_per_s") or 0 for r in bulk]
    ax.barh(range(len(bulk)), values, color=[colors[r.group] for r in bulk])
    ax.set_yticks(range(len(bulk)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values, default=1) * 1.15)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("jobs/s, end to end (median of the runs)")
    ax.set_title("Throughput: Listener (blue), raw limits (grey), peers (orange)", fontsize=10)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=7)
    ax = axes[1]
    labels = [f"{_short(r)} ({r.backend})" for r in latency]
    p50 = [r.median("p50_ms") or 0 for r in latency]
    p99 = [r.median("p99_ms") or 0 for r in latency]
    ax.barh(range(len(latency)), p99, color=[colors[r.group] for r in latency], alpha=0.45, label="p99")
    ax.barh(range(len(latency)), p50, color=[colors[r.group] for r in latency], label="p50")
    ax.set_yticks(range(len(latency)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(max(min([v for v in p50 if v > 0], default=1.0) / 2, 0.01), max(p99, default=1.0) * 2.5)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("ms from create/enqueue to handler/task start at 200 jobs/s (log scale; dark p50, light p99)")
    for i, v in enumerate(p99):
        ax.text(v, i, f" {v:,.1f}", va="center", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _short(row: Row) -> str:
    text = row.scenario.removeprefix("peer: ")
    for cut in (" (", ", latency", ", bulk", ": create"):
        text = text.split(cut)[0] if cut in text and not text.startswith("limit") else text
    return text[:70]


LEGEND = """\
- **jobs/s**: jobs created and run to the end per second (bulk: as fast as they can be created, then until the
  last ends; latency rows: the offered 200/s). **events/s**: events written to the log per second (Listener
  writes 5 per job: created, ready, updated by the ack, updated by the tick, completed). Peers write none.
- **p50/p99 ms**: latency rows: from the create (enqueue) call to the handler (task) starting, or to job:completed
  reaching the creator; list rows: one `jobs.list` call.
- **peak RSS**: the scenario's process (in-process rows, the largest over its runs); remote rows: the
  `listener serve` process (its worker's in the notes); peers: their worker process.
- **of limit**: Listener's jobs/s as a share of the best raw figure of the same writes on the same database (the
  limit rows), events/s of fan-out as a share of raw pyee. Group commit lets a store pass the "a commit each" row.
- **ours/peer**: a peer's bulk row: our in-process lifecycle and our remote (1 worker) jobs/s on the matching
  backend (SQLite for Redis and SQLite peers, PostgreSQL for PostgreSQL peers) ÷ the peer's (above 1× we are
  faster); its latency row: our p99 (create → handler start, SQLite, in-process and remote) ÷ the peer's p99
  (below 1× we are faster). Peers' jobs/s stop at their last task's start, so their last job's own bookkeeping is
  not counted.
"""


METHOD = """\
- **lifecycle in-process** (`bench/lifecycle.py`): `job_handler("workbook:bench", handler)` run by
  `platform.running`; the handler does one `tick(50, "half")`; jobs are created with 64 creations in flight, at
  most 256 jobs not yet ended, for a fixed time, and counted when their `job:completed` is published. Every
  scenario's process first calls `listener.tune_gc()`, as `listener serve`, `run` and `dev` do (README).
- **remote** (`bench/remote.py`): `listener serve` and `listener run` subprocesses (a fresh database each run; with
  two replicas, one worker on each, both one agent); this process creates the jobs through a `Client` (32 in
  flight, at most 256 not ended) and counts `job:completed` on its own websocket stream.
- **latency**: the same two set-ups, jobs created one at a time at 200/s (open loop); from the `jobs.create`
  call to the handler starting (after job_handler's ack) and to `job:completed` reaching the creator.
- **fan-out** (`bench/fanout.py`): 100 listeners run in-process, each its own agent with one handler on
  `job:updated` and a distinct `{"job": ...}` filter; events appended to the log 100 per write, each handled by
  exactly one listener.
- **growth** (`bench/growth.py`): a million jobs written into the store's own tables from one real job (80 %
  complete, 10 % failed, 5 % cancelled, the rest running, ready or scheduled, over 5 types and 4 operations;
  PostgreSQL then VACUUM ANALYZEd as autovacuum would), then `platform.api.jobs.list(status=..., type=...)`
  (first page of 50, with the total) timed over four pairs from rare to common. The soak runs job_handler jobs
  64 at a time and reads RSS (resident now) every 1 % of them.
- **limits** (`bench/limits.py`): the same rows one job writes, in the store's own schema, written raw
  (`sqlite3`, asyncpg) with documents serialized beforehand: a commit per transaction, or 64 jobs a commit (4
  such writers on PostgreSQL); and `pyee.EventEmitter.emit` to 100 handlers on distinct event names.
- **peers** (`bench/peers.py`): each peer's own worker CLI in a subprocess with a no-op task that notes when it
  starts; enqueued from this process like our remote runs (32 in flight, at most 256 not started), and at 200/s.
  Redis peers on database 7 of one Redis, PostgreSQL peers in a fresh schema, huey's SqliteHuey on a fresh file;
  what each keeps and promises is in the README's Performance section and under "Peers' guarantees" below.
"""


PEER_GUARANTEES = """\
Ours, to compare with: every transition and its event committed before the call returns (SQLite in WAL mode with
synchronous=NORMAL: a killed process loses nothing, a power cut may lose the last commits; PostgreSQL with the
synchronous_commit above); an acked job holds a lease (60 s), and one whose worker dies goes back to ready (at
least once); every job, its result and its events are kept until the retention (30 days).

- **pgqueuer** (`pgq run module:factory`, its defaults; its tables installed by `pgq install`, logged, its default
  durability): an enqueue is a committed INSERT, as durable as ours on PostgreSQL. A worker claims jobs in batches
  of 10 (`FOR UPDATE SKIP LOCKED`) and heartbeats them; a job whose worker died is picked again after 30 s without
  a heartbeat (at least once). Completions are buffered (10 jobs or 0.1 s), then each deletes its job's row and
  logs its status (`pgqueuer_log`, folded into statistics): no result is kept, and a worker killed before the
  flush leaves those jobs to run again.
- **huey, SqliteHuey** (`huey_consumer module.huey`, one worker thread): the queue is a SQLite file in WAL mode with
  SQLite's default synchronous, FULL here (every commit fsyncs the WAL: stricter than our NORMAL; the header says
  what it ran with). There is no ack: the consumer deletes a task's row as it takes it, before running it, so a
  consumer killed mid-task loses that task (at most once; retried only if declared with `retries`). A return value
  other than None is kept in the file until it is read. The consumer polls: 100 ms apart by default, 10 ms here
  (`--delay 0.01`, as arq's poll_delay), else the latency rows would measure the poll.
- **streaq** (`streaq run module:worker`, one process, 16 tasks at a time): Redis streams with a consumer group; a
  task is acked (XACK) when it ends, and one whose worker died is claimed again after 60 s idle (at least once;
  3 tries by default). Results are kept in Redis for 5 minutes. On disk: what Redis is configured to keep, nothing
  here (see the header), as for Taskiq, arq, SAQ, Celery and Dramatiq.
"""


TIME_PER_JOB = """\
Where the event loop's CPU goes per job, from py-spy samples of `bench/lifecycle.py --path job_handler` (8,000
jobs, SQLite) and of `listener serve` under `bench/remote.py`, scaled to the CPU per job the scripts print. Read
them as proportions: a profile that samples the loop slows it, and runs on a shared 2-CPU machine vary by 10-20%.

| in-process, per job | 2026-12-04 (575 µs) | 2026-12-06 (537 µs) |
| --- | ---: | ---: |
| job_handler and the runner: dispatch, and the ack, tick and complete calls | 149 | 106 |
| SQLite statements: the job's insert and three updates, five events, the commits | 105 | 119 |
| the moves' rules: the job's copies, its event payloads, its indexed columns | 101 | 98 |
| JSON of the job and its events (pydantic) | 51 | 57 |
| the create: the job, its events, the store call | 54 | 53 |
| the event log's publish and the runner's feed | 41 | 27 |
| anyio tasks, scopes and events; the loop | 42 | 35 |
| the benchmark's own client | 31 | 42 |

| `listener serve`, per remote job | 2026-12-04 (837 µs) | 2026-12-06 (773 µs) |
| --- | ---: | ---: |
| the job calls: creates as REST requests, the worker's three moves on the channel | 300 + 158 | |
| the job calls, all four on the channel (creates with `stream(calls=True)`) | | 335 |
| write batches: SQL, JSON, rules (creates now carry their Idempotency-Key) | 269 | 307 |
| event stream sends | 19 | 40 |
| the loop, tasks, websocket reads; the system agent and scheduler | 91 | 72 |

What is left is spread thin: no function takes more than 5% of a job. The SQL itself (about 120 µs for a
job's four writes and five events, with its indexes) is a quarter of the in-process cost; the rest is Python
around it: a pydantic Job of 45 fields built, copied and dumped at each move, its events, and the awaits
between them. The targets below need two to four times less CPU per job: a job kept as a plain object inside
the platform (pydantic only at the boundaries) and fewer awaited steps per move, not another local cut.
"""


def document(args: argparse.Namespace, head: list[str], table: Table, ran: list[Ran], skipped: list[str],
             notes: list[str], wall: float, png: str | None) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Performance", "",
             f"Measured by `make bench` ({'`--quick`, ' if args.quick else ''}{when}); reproduce with `make bench`, "
             "or `.venv/bin/python bench/suite.py --quick` for a two-minute pass. Each scenario's own script in "
             "`bench/` prints more detail (CPU per job, per-process figures, profiles).", ""]
    lines += [f"- {h}" for h in head]
    lines += ["", table.markdown(), "", LEGEND, "## Targets (issues 8 and 15), from the figures above", ""]
    lines += table.targets()
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in skipped]
    lines += ["", "## The run", "",
              "Each scenario's wall time, and how many CPUs the machine's other processes kept busy meanwhile "
              "(PostgreSQL and Redis, which the scenario uses, and anything else running on the machine): on a "
              f"{os.cpu_count()}-CPU machine, a figure measured beside other work is low.", ""]
    lines += [f"- `{r.key}`: {r.seconds:.0f}s" + (f", other load {r.other_cpu:.1f} CPU" if r.other_cpu is not None
                                                 else "") + (f"; **failed**: {r.error}" if r.error else "")
              for r in ran]
    lines += [f"- total wall time: {wall:.0f}s"]
    lines += ["", "## Where the time per job goes", "", TIME_PER_JOB.rstrip()]
    lines += ["", "## How each scenario is measured", "", METHOD.rstrip()]
    lines += ["", "## Peers' guarantees", "", PEER_GUARANTEES.rstrip()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if png:
        lines += ["", f"![Throughput and latency, from the table above]({png})"]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run each, shorter runs, smaller stores")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3; --quick: 1)")
    parser.add_argument("--only", action="append", choices=[s.key for s in SCENARIOS], metavar="SCENARIO",
                        help=f"run only these scenarios (repeatable): {', '.join(s.key for s in SCENARIOS)}")
    parser.add_argument("--skip", action="append", default=[], choices=[s.key for s in SCENARIOS],
                        metavar="SCENARIO", help="leave these scenarios out (repeatable)")
    parser.add_argument("--db", default=os.environ.get("BENCH_PG", DEFAULT_PG),
                        help=f"PostgreSQL database; each scenario uses a fresh schema (default {DEFAULT_PG})")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", DEFAULT_REDIS),
                        help=f"Redis server for the peers; database 7 is flushed (default {DEFAULT_REDIS})")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"), help="the Markdown file to write")
    parser.add_argument("--png", default=str(ROOT / "docs" / "performance.png"), help="the chart to write")
    parser.add_argument("--no-write", action="store_true", help="print the table only; write no file")
    parser.add_argument("--json", default=None, help="also write every row's per-run figures to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _pg_reachable(url: str) -> str | None:
    try:
        subprocess.run(["psql", url, "-qtAc", "SELECT 1"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"PostgreSQL at {url} is unreachable ({exc.__class__.__name__})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return _child(args)
    sys.path.insert(0, str(HERE))
    import limits
    import peers

    start = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = Sizes(**{**asdict(sizes), "runs": args.runs})
    chosen = [s for s in SCENARIOS if (not args.only or s.key in args.only) and s.key not in args.skip]
    skipped: list[str] = []
    if why := _pg_reachable(args.db):
        pg_scenarios = {"lifecycle-postgres", "remote-postgres-1", "remote-postgres-2", "remote-postgres-2-replicas",
                        "list-postgres", "peer-saq-pg", "peer-procrastinate", "peer-pgqueuer"}
        skipped += [f"{s.key}: {why}" for s in chosen if s.key in pg_scenarios]
        chosen = [s for s in chosen if s.key not in pg_scenarios]
    import anyio

    pg_info: dict[str, str] = {}
    with contextlib.suppress(Exception):
        pg_info = anyio.run(limits.pg_settings, args.db)
    redis = peers.redis_info(args.redis)
    head = header(args, pg_info, redis, sizes)
    print("\n".join(head), flush=True)
    print(f"{len(chosen)} scenario(s); each runs in a child process. Progress:", flush=True)

    rows: list[Row] = []
    ran: list[Ran] = []
    notes: list[str] = []
    stores: list[str] = []
    with tempfile.TemporaryDirectory(prefix="listener-suite-") as tmp:
        for scenario in chosen:
            print(f"  [{time.perf_counter() - start:4.0f}s] {scenario.key} ...", end="", flush=True)
            outcome, r = run_scenario(scenario, args, Path(tmp))
            ran.append(r)
            rows += outcome.rows
            skipped += outcome.skipped
            status = f" {r.seconds:.0f}s" + (f" (other load {r.other_cpu:.1f} CPU)" if r.other_cpu is not None else "")
            print(status + (f"  FAILED: {r.error}" if r.error else "") +
                  (f"  skipped: {'; '.join(outcome.skipped)}" if outcome.skipped else ""), flush=True)
            notes += [f"{row.scenario} ({row.backend}): {row.note}" for row in outcome.rows if row.note]
            if outcome.info.get("durability"):  # a peer's store, as it ran: for the header
                stores.append(f"{outcome.info['peer']}: {outcome.info['durability']}")
    if stores:
        head.append(f"Peers' stores, read from their connections: {'; '.join(stores)}")
        print(head[-1])
    wall = time.perf_counter() - start
    rows.sort(key=_display_rank)
    table = Table(rows)

    print()
    print(table.markdown())
    print()
    print("Targets (issues 8 and 15):")
    for line in table.targets():
        print(" ", line.removeprefix("- ").replace("**", ""))
    for s in skipped:
        print(f"Skipped: {s}")
    for r in ran:
        if r.error:
            print(f"FAILED: {r.key}: {r.error}")

    png_note = None
    if not args.no_write:
        png = Path(args.png)
        png_note = chart(table, png)
        if png_note:
            print(png_note)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(png, out.parent) if png_note is None else None
        out.write_text(document(args, head, table, ran, skipped, notes, time.perf_counter() - start, rel))
        print(f"Wrote {out}" + ("" if png_note else f" and {png}"))
    if args.json:
        Path(args.json).write_text(json.dumps({"header": head, "rows": [asdict(r) for r in rows],
                                               "skipped": skipped, "ran": [asdict(r) for r in ran]}, indent=2))
    wall = time.perf_counter() - start
    print(f"Total wall time: {wall:.0f}s ({wall / 60:.1f} min)")
    return 1 if any(r.error for r in ran) else 0


if __name__ == "__main__":
    sys.exit(main())
