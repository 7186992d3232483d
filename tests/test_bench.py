"""The benchmark harness produces figures (tiny runs; no timing is asserted: `make bench` is the measure)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """bench/'s modules, imported as its scripts import each other (bench/ on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import fanout
    import lifecycle
    import limits
    import peers
    import suite

    return {"fanout": fanout, "lifecycle": lifecycle, "limits": limits, "peers": peers, "suite": suite}


def test_lifecycle_bulk_and_steady_give_figures(bench: dict[str, ModuleType]) -> None:
    lifecycle = bench["lifecycle"]
    bulk = lifecycle.measure("job_handler", lifecycle.parse_args(["--path", "job_handler", "--jobs", "50"]), 1)
    assert bulk.jobs == 50 and bulk.failed == 0
    assert bulk.jobs_per_s > 0 and bulk.events_per_s > 0
    assert len(bulk.dispatch_ms) == 50 and len(bulk.e2e_ms) == 50

    steady = lifecycle.measure("job_handler", lifecycle.parse_args(["--steady", "100", "--seconds", "0.3"]), 1)
    assert steady.jobs == 30
    assert lifecycle.percentile(steady.dispatch_ms, 99) is not None


def test_fanout_and_pyee_limit_give_figures(bench: dict[str, ModuleType]) -> None:
    figures = anyio.run(bench["fanout"].run_once, 0.2, 5)
    assert figures["events"] > 0 and figures["events_per_s"] > 0
    assert bench["limits"]._pyee_run(0.02)["events_per_s"] > 0


def test_table_has_every_column_and_the_ratios(bench: dict[str, ModuleType]) -> None:
    suite = bench["suite"]
    rows = [
        suite.Row("lifecycle-sqlite", "lifecycle in-process", "SQLite", "listener", limit="sqlite", rss_mib=80,
                  runs=[{"jobs_per_s": 100.0, "events_per_s": 500.0}, {"jobs_per_s": 300.0, "events_per_s": 1500.0},
                        {"jobs_per_s": 200.0, "events_per_s": 1000.0}]),
        suite.Row("limit-sqlite_commit", "limit", "SQLite", "limit", runs=[{"jobs_per_s": 400.0}]),
        suite.Row("limit-sqlite_group", "limit, grouped", "SQLite", "limit", runs=[{"jobs_per_s": 800.0}]),
        suite.Row("peer-x", "peer: X 1.0, bulk", "Redis", "peer", runs=[{"jobs_per_s": 50.0}]),
    ]
    table = suite.Table(rows)
    text = table.markdown()
    assert all(column in text.splitlines()[0] for column in suite.COLUMNS)
    assert table.cells(rows[0])[2:4] == ["200", "1,000"]  # medians
    assert table.cells(rows[0])[7] == "25%"  # 200 of the best limit, 800
    assert table.cells(rows[3])[8] == "in-proc 4.00×"
    assert any("met" in line for line in table.targets())


def test_suite_knows_its_scenarios(bench: dict[str, ModuleType]) -> None:
    args = bench["suite"].parse_args(["--quick", "--only", "limits", "--no-write"])
    assert args.quick and args.only == ["limits"]
    assert sys.executable  # the suite runs each scenario with this interpreter


def test_every_peer_is_wired_into_the_suite(bench: dict[str, ModuleType]) -> None:
    """Without the peers' packages (CI has no bench extra): their sources, commands and brokers only."""
    peers, suite = bench["peers"], bench["suite"]
    assert {"pgqueuer", "huey", "streaq"} <= set(peers.PEERS)
    scenarios = {s.key for s in suite.SCENARIOS}
    for key, peer in peers.PEERS.items():
        assert f"peer-{key}" in scenarios
        compile(peer.source.replace("{url}", "x").replace("{queue}", "bench"), f"<{key}>", "exec")
        assert peer.command("bench_peer_x")[0].startswith(str(peers.BIN))
        assert peer.broker in {"Redis", "PostgreSQL", "SQLite"}
        assert peers._package_version(peer)  # its distribution is known ("?" when not installed)
    huey = peers.PEERS["huey"]
    assert peers.broker_problem(huey, "redis://unused", "postgresql://unused") is None
    with peers._broker(huey, "redis://unused", "postgresql://unused") as path:
        assert Path(path).parent.is_dir() and not Path(path).exists()
    assert not Path(path).parent.exists()


def test_pgqueuer_is_the_postgresql_reference(bench: dict[str, ModuleType]) -> None:
    suite = bench["suite"]

    def row(key: str, backend: str, group: str, jobs_per_s: float) -> object:
        return suite.Row(key, f"peer: {key.removeprefix('peer-')} 1.0, bulk" if group == "peer" else key, backend,
                         group, runs=[{"jobs_per_s": jobs_per_s}])

    table = suite.Table([
        row("lifecycle-postgres", "PostgreSQL", "listener", 250.0),
        row("remote-postgres-1w1r", "PostgreSQL", "listener", 120.0),
        row("remote-sqlite-1w1r", "SQLite", "listener", 300.0),
        row("peer-procrastinate", "PostgreSQL", "peer", 400.0),  # faster, but the issue names pgqueuer
        row("peer-pgqueuer", "PostgreSQL", "peer", 100.0),
        row("peer-huey", "SQLite", "peer", 500.0),
    ])
    lines = table.targets()
    assert any(line.startswith("- in-process lifecycle on PostgreSQL ≥ 2× pgqueuer 1.0:") and "met" in line
               for line in lines)
    assert any(line.startswith("- remote, 1 worker on PostgreSQL ≥ 1.5× pgqueuer 1.0:") and "missed" in line
               for line in lines)
    assert any("the fastest peer, whatever its backend (huey 1.0)" in line for line in lines)
    assert table.cells(table.by_key["peer-huey"])[8] == "remote 0.60×"  # the SQLite peer against ours on SQLite
