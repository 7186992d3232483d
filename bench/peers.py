"""Peers: other Python job queues on the same machine, measured the way bench/remote.py measures Listener.

For each peer, one worker runs in a subprocess (the peer's own CLI) with a no-op task that appends
"<n> <time.time()>" to a file as it starts, as Listener's remote worker does. This process enqueues jobs with
the peer's client:

* bulk: jobs enqueued with at most 32 enqueues in flight (Celery's and Dramatiq's clients block: one at a
  time) for at most `--max-seconds` (or `--jobs` of them), and with `--backlog` no more while that many have
  not started (as Listener's bulk runs under `make bench`); jobs/s = jobs / (first enqueue → the last task
  started). The last job's bookkeeping after its task (a result, an ack, a status row) is not waited for,
  which favours the peer slightly.
* steady: one job at a time at 200/s for `--seconds`; latency = enqueue called → task started, p50/p99.

Peers (each skipped, with the reason, when its package or broker is missing):

* Taskiq with taskiq-redis's ListQueueBroker, `taskiq worker --workers 1` (default 100 async tasks);
* arq on Redis (max_jobs 10, poll_delay 10 ms instead of 500 ms, which would add ~250 ms to every latency);
* SAQ on Redis (concurrency 10), and SAQ on PostgreSQL;
* Procrastinate on PostgreSQL (concurrency 10, LISTEN/NOTIFY);
* Celery with the solo pool on Redis, no result backend;
* Dramatiq on Redis, `dramatiq --processes 1 --threads 8`, its default middleware (no retries);
* streaq on Redis streams, `streaq run` (one worker, concurrency 16, acks after the task, results kept 5 minutes);
  the task is `silent=True`, streaq's own switch for its per-task INFO lines, as the others run at WARNING;
* huey's SqliteHuey on a SQLite file, `huey_consumer --quiet` (WARNING, as the others; one worker thread; WAL and
  SQLite's default synchronous, FULL here: the pragmas it runs with are read from its connection and printed),
  with `--delay 0.01`: huey polls its queue, 100 ms apart by default, which would add ~50 ms to every latency (as
  arq's poll_delay);
* pgqueuer on PostgreSQL, `pgq run` (its defaults: batches of 10, LISTEN/NOTIFY), its tables installed by
  `pgq install` (its default durability: logged tables) into the fresh schema.

Redis peers use database 7 of `--redis` (flushed before and after each peer); PostgreSQL peers a fresh schema of
`--db` (dropped after); the SQLite peer a file in a temporary directory. Redis is used as it is configured (its
persistence is printed in the table's header).

    .venv/bin/python bench/peers.py                     # every peer, 3 runs each
    .venv/bin/python bench/peers.py --only taskiq --runs 1
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import anyio

from listener.process import loop_options

BIN = Path(sys.executable).parent
REDIS_DB = 7
STARTED = "BENCH_STARTED_FILE"

Enqueue = Callable[[int], Awaitable[None]]


# -- the peers --------------------------------------------------------------------------


@dataclass
class Peer:
    key: str
    name: str
    broker: str  # "Redis", "PostgreSQL" or "SQLite"
    packages: tuple[str, ...]  # import names it needs
    source: str  # the module the worker loads (and this process imports to enqueue), {url} and {queue} replaced
    command: Callable[[str], list[str]]  # module name → the worker's argv
    client: Callable[[ModuleType], contextlib.AbstractAsyncContextManager[Enqueue]]
    setup: str = ""  # a shell-free step before the worker starts: "procrastinate-schema", "pgqueuer-install"
    notes: str = ""
    # What the peer's store promises on disk, read at run time from the client's own connection (printed).
    durability: Callable[[ModuleType], Awaitable[str]] | None = None

    def missing(self) -> str | None:
        absent = [p for p in self.packages if importlib.util.find_spec(p) is None]
        return f"{', '.join(absent)} not installed (pip install -e '.[bench]')" if absent else None


_TASK_WRITE = '''
import os as _os
import time as _time

_out = None


def _started(i):
    global _out
    if _out is None:
        _out = open(_os.environ["BENCH_STARTED_FILE"], "a", buffering=1)  # line-buffered: whole lines
    _out.write(f"{i} {_time.time()!r}\\n")
'''

TASKIQ = _TASK_WRITE + '''
from taskiq_redis import ListQueueBroker

broker = ListQueueBroker("{url}", queue_name="{queue}")


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    _started(i)
'''

ARQ = _TASK_WRITE + '''
from arq.connections import RedisSettings

QUEUE = "{queue}"


async def noop(ctx, i):
    _started(i)


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn("{url}")
    queue_name = QUEUE
    max_jobs = 10
    poll_delay = 0.01
    keep_result = 60
    handle_signals = True
'''

SAQ = _TASK_WRITE + '''
from saq import Queue

queue = Queue.from_url("{url}", name="{queue}")


async def noop(ctx, *, i):
    _started(i)


settings = {"queue": queue, "functions": [noop], "concurrency": 10}
'''

PROCRASTINATE = _TASK_WRITE + '''
import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo="{url}"))


@app.task(name="noop", queue="{queue}")
async def noop(i):
    _started(i)
'''

CELERY = _TASK_WRITE + '''
from celery import Celery

app = Celery("bench", broker="{url}")
app.conf.update(task_ignore_result=True, task_default_queue="{queue}", broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)


@app.task(name="noop")
def noop(i):
    _started(i)
'''

DRAMATIQ = _TASK_WRITE + '''
import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url="{url}"))


@dramatiq.actor(actor_name="noop", queue_name="{queue}", max_retries=0)
def noop(i):
    _started(i)
'''

STREAQ = _TASK_WRITE + '''
from streaq import Worker

worker = Worker(redis_url="{url}", queue_name="{queue}")


@worker.task(name="noop", silent=True)
async def noop(i: int) -> None:
    _started(i)
'''

HUEY = _TASK_WRITE + '''
from huey import SqliteHuey

huey = SqliteHuey("{queue}", filename="{url}")


@huey.task()
def noop(i):
    _started(i)
'''

PGQUEUER = _TASK_WRITE + '''
import contextlib

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver

DSN = "{url}"


@contextlib.asynccontextmanager
async def main():
    connection = await asyncpg.connect(DSN)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job):
        _started(int(job.payload))

    try:
        yield pgq
    finally:
        await connection.close()
'''


@contextlib.asynccontextmanager
async def _taskiq_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    await mod.broker.startup()
    try:
        async def enqueue(i: int) -> None:
            await mod.noop.kiq(i)

        yield enqueue
    finally:
        await mod.broker.shutdown()


@contextlib.asynccontextmanager
async def _arq_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    from arq import create_pool

    redis = await create_pool(mod.WorkerSettings.redis_settings)
    try:
        async def enqueue(i: int) -> None:
            await redis.enqueue_job("noop", i, _queue_name=mod.QUEUE)

        yield enqueue
    finally:
        await redis.aclose() if hasattr(redis, "aclose") else await redis.close()


@contextlib.asynccontextmanager
async def _saq_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    await mod.queue.connect()
    try:
        async def enqueue(i: int) -> None:
            await mod.queue.enqueue("noop", i=i)

        yield enqueue
    finally:
        await mod.queue.disconnect()


@contextlib.asynccontextmanager
async def _procrastinate_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    async with mod.app.open_async():
        async def enqueue(i: int) -> None:
            await mod.noop.defer_async(i=i)

        yield enqueue


@contextlib.asynccontextmanager
async def _celery_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    async def enqueue(i: int) -> None:
        mod.noop.apply_async((i,))  # Celery's client blocks; the loop has nothing else to do meanwhile

    yield enqueue


@contextlib.asynccontextmanager
async def _dramatiq_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    async def enqueue(i: int) -> None:
        mod.noop.send(i)  # Dramatiq's client blocks, as Celery's does

    try:
        yield enqueue
    finally:
        mod.dramatiq.get_broker().close()


@contextlib.asynccontextmanager
async def _streaq_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    async with mod.worker:
        async def enqueue(i: int) -> None:
            await mod.noop.enqueue(i)

        yield enqueue


@contextlib.asynccontextmanager
async def _huey_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    async def enqueue(i: int) -> None:
        mod.noop(i)  # huey's client blocks (an insert and its commit), as Celery's does

    try:
        yield enqueue
    finally:
        mod.huey.storage.close()


async def _huey_durability(mod: ModuleType) -> str:
    conn = mod.huey.storage.conn  # this process's connection, opened as the consumer's is (the same module)
    journal = conn.execute("pragma journal_mode").fetchone()[0]
    sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(conn.execute("pragma synchronous").fetchone()[0], "?")
    return f"SqliteHuey's defaults: journal_mode={journal}, synchronous={sync}"


@contextlib.asynccontextmanager
async def _pgqueuer_client(mod: ModuleType) -> AsyncIterator[Enqueue]:
    from pgqueuer.db import AsyncpgPoolDriver
    from pgqueuer.queries import Queries

    pool = await mod.asyncpg.create_pool(mod.DSN)  # a pool, so that 32 enqueues can be in flight
    try:
        queries = Queries(AsyncpgPoolDriver(pool))

        async def enqueue(i: int) -> None:
            await queries.enqueue("noop", str(i).encode())

        yield enqueue
    finally:
        await pool.close()


async def _pgqueuer_durability(mod: ModuleType) -> str:
    conn = await mod.asyncpg.connect(mod.DSN)
    try:
        persistence = await conn.fetchval("SELECT relpersistence::text FROM pg_class WHERE oid = 'pgqueuer'::regclass")
        commit = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    kind = {"p": "logged", "u": "unlogged"}.get(persistence, persistence)
    return f"pgq install's default durability: {kind} tables; synchronous_commit={commit}"


PEERS: dict[str, Peer] = {p.key: p for p in [
    Peer("taskiq", "Taskiq", "Redis", ("taskiq", "taskiq_redis"), TASKIQ,
         lambda m: [str(BIN / "taskiq"), "worker", f"{m}:broker", "--workers", "1", "--log-level", "WARNING"],
         _taskiq_client, notes="ListQueueBroker, 1 worker process, 100 async tasks"),
    Peer("arq", "arq", "Redis", ("arq",), ARQ,
         lambda m: [str(BIN / "arq"), f"{m}.WorkerSettings"], _arq_client,
         notes="max_jobs 10, poll_delay 10 ms"),
    Peer("saq", "SAQ", "Redis", ("saq",), SAQ,
         lambda m: [str(BIN / "saq"), f"{m}.settings", "--quiet"], _saq_client, notes="concurrency 10"),
    Peer("saq-pg", "SAQ", "PostgreSQL", ("saq", "psycopg", "psycopg_pool"), SAQ,
         lambda m: [str(BIN / "saq"), f"{m}.settings", "--quiet"], _saq_client, notes="concurrency 10"),
    Peer("procrastinate", "Procrastinate", "PostgreSQL", ("procrastinate", "psycopg"), PROCRASTINATE,
         lambda m: [str(BIN / "procrastinate"), f"--app={m}.app", "worker", "--concurrency", "10",
                    "--queues", "bench"],
         _procrastinate_client, setup="procrastinate-schema", notes="concurrency 10, LISTEN/NOTIFY"),
    Peer("celery", "Celery", "Redis", ("celery", "redis"), CELERY,
         lambda m: [str(BIN / "celery"), "-A", m, "worker", "--pool", "solo", "--concurrency", "1",
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
                    "-Q", "bench"],
         _celery_client, notes="solo pool, no result backend"),
    Peer("dramatiq", "Dramatiq", "Redis", ("dramatiq", "redis"), DRAMATIQ,
         lambda m: [str(BIN / "dramatiq"), m, "--processes", "1", "--threads", "8"], _dramatiq_client,
         notes="1 process, 8 threads, default middleware"),
    Peer("streaq", "streaq", "Redis", ("streaq",), STREAQ,
         lambda m: [str(BIN / "streaq"), "run", f"{m}:worker"], _streaq_client,
         notes="Redis streams, 1 worker, concurrency 16, silent task"),
    Peer("huey", "huey", "SQLite", ("huey",), HUEY,
         lambda m: [str(BIN / "huey_consumer"), f"{m}.huey", "--quiet", "--delay", "0.01"], _huey_client,
         notes="SqliteHuey, 1 worker thread, polls from 10 ms", durability=_huey_durability),
    Peer("pgqueuer", "pgqueuer", "PostgreSQL", ("pgqueuer", "asyncpg"), PGQUEUER,
         lambda m: [str(BIN / "pgq"), "run", f"{m}:main"], _pgqueuer_client,
         setup="pgqueuer-install", notes="batches of 10, LISTEN/NOTIFY", durability=_pgqueuer_durability),
]}


# -- measuring --------------------------------------------------------------------------


class Started:
    """Reads the worker's "<n> <time>" lines as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.times: dict[int, float] = {}
        self.count = 0  # distinct jobs started so far
        self._offset = 0
        self._rest = b""

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            n, _, when = line.partition(b" ")
            with contextlib.suppress(ValueError):
                job, at = int(n), float(when)
                if job not in self.times:
                    self.times[job] = at
                    self.count += 1

    async def wait_for(self, ids: Sequence[int], timeout: float, worker: subprocess.Popen[bytes] | None = None,
                       log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if all(i in self.times for i in ids):
                return
            if worker is not None and worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}: {_tail(log)}")
            if time.monotonic() > deadline:
                missing = sum(1 for i in ids if i not in self.times)
                raise RuntimeError(f"{missing} of {len(ids)} job(s) had not started after {timeout:g}s: {_tail(log)}")
            await anyio.sleep(0.005)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])


def _percentile(values: Sequence[float], p: int) -> float | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def bulk(enqueue: Enqueue, started: Started, first: int, jobs: int, max_seconds: float,
               concurrency: int = 32, backlog: int | None = None, timeout: float = 120.0) -> dict[str, float]:
    ids: list[int] = []
    slots = anyio.Semaphore(concurrency)
    base = started.count

    async def one(i: int) -> None:
        try:
            await enqueue(i)
        finally:
            slots.release()

    t0 = time.time()
    begin = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(first, first + jobs):
            if time.monotonic() - begin >= max_seconds:
                break
            while backlog is not None and len(ids) - (started.count - base) >= backlog:
                await anyio.sleep(0.002)  # as Listener's bulk runs: no more than `backlog` jobs waiting
                started.poll()
            await slots.acquire()
            ids.append(i)
            tg.start_soon(one, i)
    await started.wait_for(ids, timeout)
    wall = max(started.times[i] for i in ids) - t0
    return {"jobs_per_s": len(ids) / wall, "jobs": len(ids), "wall_s": wall}


async def steady(enqueue: Enqueue, started: Started, first: int, rate: float, seconds: float,
                 timeout: float = 60.0) -> dict[str, float]:
    n = max(1, round(rate * seconds))
    enqueued: dict[int, float] = {}
    begin = anyio.current_time()
    for k in range(n):
        await anyio.sleep_until(begin + k / rate)
        enqueued[first + k] = time.time()  # from the call, as Listener's figures count from `jobs.create` called
        await enqueue(first + k)
    await started.wait_for(list(enqueued), timeout)
    latencies = [(started.times[i] - t) * 1000 for i, t in enqueued.items()]
    return {"p50_ms": _percentile(latencies, 50) or 0.0, "p99_ms": _percentile(latencies, 99) or 0.0,
            "jobs": n, "jobs_per_s": n / (max(started.times[i] for i in enqueued) - min(enqueued.values()))}


def _tree_peak_rss_mib(pid: int) -> float | None:
    """The largest peak RSS (VmHWM) among a process and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    best: float | None = None
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) / 1024
                    best = rss if best is None else max(best, rss)
        except (OSError, ValueError, IndexError):
            continue
    return best


@dataclass
class PeerResult:
    peer: Peer
    bulk: list[dict[str, float]] = field(default_factory=list)
    steady: list[dict[str, float]] = field(default_factory=list)
    rss_mib: float | None = None
    skipped: str | None = None
    version: str = ""
    durability: str = ""


@contextlib.contextmanager
def _broker(peer: Peer, redis_url: str, pg_url: str) -> Iterator[str]:
    """The broker URL for the peer: a flushed Redis database, a fresh PostgreSQL schema (dropped after), or the path
    of a SQLite file in a temporary directory (removed after)."""
    if peer.broker == "SQLite":
        with tempfile.TemporaryDirectory(prefix="listener-peer-sqlite-") as tmp:
            yield str(Path(tmp) / f"{peer.key}.db")
        return
    if peer.broker == "Redis":
        url = f"{redis_url.rstrip('/')}/{REDIS_DB}"
        _redis_cli(redis_url, "FLUSHDB")
        try:
            yield url
        finally:
            _redis_cli(redis_url, "FLUSHDB")
        return
    schema = f"bench_{peer.key.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    _psql(pg_url, f"CREATE SCHEMA {schema}")
    try:
        # libpq's options parameter sets the search path of every connection the peer opens.
        sep = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        _psql(pg_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _redis_cli(url: str, *command: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    out = subprocess.run(["redis-cli", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379),
                          "-n", str(REDIS_DB), *command], capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip()


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qc", sql], capture_output=True, check=True, timeout=30)


def broker_problem(peer: Peer, redis_url: str, pg_url: str) -> str | None:
    try:
        if peer.broker == "SQLite":
            return None
        if peer.broker == "Redis":
            if _redis_cli(redis_url, "PING") != "PONG":
                return f"Redis at {redis_url} did not answer PING"
        else:
            _psql(pg_url, "SELECT 1")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{peer.broker} unreachable ({exc.__class__.__name__})"
    return None


def _package_version(peer: Peer) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"taskiq": "taskiq", "arq": "arq", "saq": "saq", "saq-pg": "saq", "procrastinate": "procrastinate",
            "celery": "celery", "dramatiq": "dramatiq", "streaq": "streaq", "huey": "huey",
            "pgqueuer": "pgqueuer"}[peer.key]
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


async def measure_peer(peer: Peer, *, runs: int, jobs: int, max_seconds: float, rate: float, seconds: float,
                       redis_url: str, pg_url: str, backlog: int | None = None) -> PeerResult:
    result = PeerResult(peer)
    if why := peer.missing() or broker_problem(peer, redis_url, pg_url):
        result.skipped = why
        return result
    result.version = _package_version(peer)
    with tempfile.TemporaryDirectory(prefix="listener-peer-") as tmp_dir, \
            _broker(peer, redis_url, pg_url) as url:
        tmp = Path(tmp_dir)
        module = f"bench_peer_{peer.key.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        queue = "bench"
        (tmp / f"{module}.py").write_text(peer.source.replace("{url}", url).replace("{queue}", queue))
        started_file, log = tmp / "started.txt", tmp / "worker.log"
        env = {**os.environ, STARTED: str(started_file), "PYTHONPATH": str(tmp), "PYTHONUNBUFFERED": "1"}
        if peer.setup == "procrastinate-schema":
            subprocess.run([str(BIN / "procrastinate"), f"--app={module}.app", "schema", "--apply"], cwd=tmp, env=env,
                           capture_output=True, check=True, timeout=60)
        elif peer.setup == "pgqueuer-install":
            # Its own CLI, into the schema the URL's search_path names (pgq's default durability).
            subprocess.run([str(BIN / "pgq"), "--pg-dsn", url, "install"], cwd=tmp, env=env,
                           capture_output=True, check=True, timeout=60)
        sys.path.insert(0, str(tmp))
        try:
            mod = importlib.import_module(module)
            with log.open("wb") as out:
                worker = subprocess.Popen(peer.command(module), cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                started = Started(started_file)
                async with peer.client(mod) as enqueue:
                    await enqueue(-1)  # warm-up: the worker is ready once this one has started
                    await started.wait_for([-1], 60, worker, log)
                    if peer.durability is not None:
                        result.durability = await peer.durability(mod)
                    first = 0
                    for _ in range(runs):
                        result.bulk.append(await bulk(enqueue, started, first, jobs, max_seconds, backlog=backlog))
                        first += jobs
                    for _ in range(runs):
                        result.steady.append(await steady(enqueue, started, first, rate, seconds))
                        first += max(1, round(rate * seconds))
                result.rss_mib = _tree_peak_rss_mib(worker.pid)
            finally:
                _stop(worker)
        finally:
            sys.path.remove(str(tmp))
            sys.modules.pop(module, None)
    return result


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's process group (Taskiq forks), then SIGKILL after 5 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def redis_info(redis_url: str) -> dict[str, str]:
    """Redis's version and persistence settings, for the table's header; empty when it does not answer."""
    try:
        version = next((line.split(":", 1)[1] for line in _redis_cli(redis_url, "INFO", "server").splitlines()
                        if line.startswith("redis_version:")), "?")
        aof = _redis_cli(redis_url, "CONFIG", "GET", "appendonly").splitlines()[-1]
        fsync = _redis_cli(redis_url, "CONFIG", "GET", "appendfsync").splitlines()[-1]
        save = _redis_cli(redis_url, "CONFIG", "GET", "save").splitlines()
        return {"version": version.strip(), "appendonly": aof, "appendfsync": fsync,
                "save": save[-1] if len(save) > 1 else ""}
    except (OSError, subprocess.SubprocessError, IndexError):
        return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=list(PEERS), help="which peers (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--jobs", type=int, default=20_000, help="bulk: jobs per run, at most (default 20,000)")
    parser.add_argument("--max-seconds", type=float, default=3.0, help="bulk: seconds of enqueueing (default 3)")
    parser.add_argument("--backlog", type=int, default=None,
                        help="bulk: enqueue no more while this many jobs have not started (default: no limit)")
    parser.add_argument("--rate", type=float, default=200.0, help="steady: jobs per second (default 200)")
    parser.add_argument("--seconds", type=float, default=3.0, help="steady: seconds (default 3)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server (database 7 is used)")
    parser.add_argument("--db", default="postgresql://127.0.0.1/test", help="PostgreSQL database")
    args = parser.parse_args(argv)
    for key in args.only or list(PEERS):
        peer = PEERS[key]
        r = anyio.run(lambda peer=peer: measure_peer(  # type: ignore[misc]
            peer, runs=args.runs, jobs=args.jobs, max_seconds=args.max_seconds, rate=args.rate,
            seconds=args.seconds, redis_url=args.redis, pg_url=args.db, backlog=args.backlog),
            backend_options=loop_options())
        label = f"{peer.name} ({peer.broker})"
        if r.skipped:
            print(f"{label:<28} skipped: {r.skipped}")
            continue
        jobs_s = statistics.median(b["jobs_per_s"] for b in r.bulk)
        p50 = statistics.median(s["p50_ms"] for s in r.steady)
        p99 = statistics.median(s["p99_ms"] for s in r.steady)
        print(f"{label:<28} {r.version:<8} {jobs_s:>8,.0f} jobs/s   @{args.rate:g}/s p50 {p50:6.2f} ms "
              f"p99 {p99:6.2f} ms   worker RSS {r.rss_mib or 0:.0f} MiB" +
              (f"   {r.durability}" if r.durability else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
