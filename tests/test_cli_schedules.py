"""`listener schedules create | list | pause | resume | delete` against a real server, as an operator runs them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Server
from tests.test_cli import cli

pytestmark = pytest.mark.anyio


async def test_schedules_commands_over_the_api(server: Server) -> None:
    code, out, err = await cli(server, "schedules", "create", "workbook:export", "0 3 * * *",
                               "--timezone", "Europe/Berlin", "--input", '{"format": "csv"}', "--json")
    assert code == 0, err
    made = json.loads(out)
    assert (made["job"], made["cron"], made["timezone"], made["input"]) == (
        "workbook:export", "0 3 * * *", "Europe/Berlin", {"format": "csv"})
    assert made["nextRunAt"] == "2026-01-02T02:00:00Z"  # the test clock's next 03:00 in Berlin (CET)
    code, out, _ = await cli(server, "schedules", "list")
    assert code == 0 and made["id"] in out and "workbook:export" in out and "1 schedule(s)" in out
    assert "2026-01-02 03:00 CET" in out and "At 03:00 every day" in out and "active" in out
    code, out, _ = await cli(server, "schedules", "pause", made["id"])
    assert code == 0 and "paused" in out
    code, out, _ = await cli(server, "schedules", "resume", made["id"], "--json")
    assert code == 0 and json.loads(out)["paused"] is False
    code, out, _ = await cli(server, "schedules", "list", "--json")
    assert [s["id"] for s in json.loads(out)["items"]] == [made["id"]]

    member = await server.token("mo", "member")
    code, out, _ = await cli(server, "schedules", "list", token=member)
    assert code == 0 and made["id"] in out, "members see schedules"
    code, _, err = await cli(server, "schedules", "delete", made["id"], token=member)
    assert code == 1 and "needs the admin role" in err
    code, _, err = await cli(server, "schedules", "create", "workbook:export", "0 3 * *")
    assert code == 1 and "cron" in err and "five fields" in err
    code, _, err = await cli(server, "schedules", "create", "workbook:export", "@daily", "--timezone", "Moon/Base")
    assert code == 1 and "timezone" in err

    code, out, _ = await cli(server, "schedules", "delete", made["id"])
    assert code == 0 and f"Deleted schedule {made['id']}." in out
    code, _, err = await cli(server, "schedules", "pause", made["id"])
    assert code == 1 and f"Schedule {made['id']} not found." in err
