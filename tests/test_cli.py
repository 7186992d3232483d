"""The `listener` command wires options to the library and reports errors in one line."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from listener import Platform
from listener.cli import main


def test_jobs_list_get_and_cancel(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> str:
        async with Platform.open(str(db_path)) as platform:
            await platform.api.jobs.create(type="workbook", operation="export")
            return (await platform.api.jobs.create(type="sheet", operation="dedupe", trigger="manual")).id

    job_id = anyio.run(seed)
    assert main(["jobs", "list", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "workbook:export" in out and "sheet:dedupe" in out and "2 of 2 job(s)" in out
    assert main(["jobs", "list", "--db", str(db_path), "--status", "created"]) == 0
    assert "1 of 1 job(s)" in capsys.readouterr().out
    assert main(["jobs", "get", "--db", str(db_path), job_id]) == 0
    assert f'"id": "{job_id}"' in capsys.readouterr().out
    assert main(["jobs", "cancel", "--db", str(db_path), job_id]) == 0
    assert f"{job_id} is cancelled" in capsys.readouterr().out


def test_errors_are_one_clear_line(db_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["jobs", "get", "--db", str(db_path), "jb_missing"]) == 1
    assert capsys.readouterr().err.startswith("listener: Job jb_missing not found.")
    monkeypatch.setenv("LISTENER_DB", str(db_path))
    assert main(["jobs", "list", "--status", "done"]) == 1
    assert "status" in capsys.readouterr().err
    assert main(["jobs", "list", "--db", "postgresql://nowhere/x"]) == 1
    assert "Unsupported database URL" in capsys.readouterr().err
