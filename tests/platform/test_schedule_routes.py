"""Schedules over REST: admins manage them, everyone signed in reads them, and bad input is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server
from tests.platform.test_server import API, assert_error, call, snapshot

pytestmark = pytest.mark.anyio

GOOD = {"job": "workbook:export", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "input": {"format": "csv"}}


async def test_admins_manage_schedules_and_everyone_reads_them(server: Server) -> None:
    admin = server.admin_token
    status, made = await call(server, "POST", f"{API}/schedules", admin, json=GOOD)
    assert status == 201, made
    assert {made[k] for k in ("job", "cron", "timezone")} == {"workbook:export", "0 3 * * *", "Europe/Berlin"}
    assert made["id"].startswith("sc_") and made["createdBy"] == "admin" and len(made["upcoming"]) == 5
    assert made["nextRunAt"] == made["upcoming"][0] and made["description"] == "At 03:00 every day"
    path = f"{API}/schedules/{made['id']}"
    for role in ("member", "agent"):
        token = await server.token(f"a-{role}", role)
        assert await call(server, "GET", f"{API}/schedules", token) == (200, {"items": [made]})
        assert await call(server, "GET", path, token) == (200, made)
        for method, where, body in (("POST", f"{API}/schedules", GOOD), ("PATCH", path, {"cron": "@daily"}),
                                    ("POST", f"{path}/pause", None), ("POST", f"{path}/resume", None),
                                    ("DELETE", path, None)):
            status, answer = await call(server, method, where, token, json=body)
            assert "admin role" in assert_error(status, answer, 403, "forbidden")
    status, paused = await call(server, "POST", f"{path}/pause", admin)
    assert (status, paused["paused"], paused["nextRunAt"], paused["upcoming"]) == (200, True, None, [])
    status, resumed = await call(server, "POST", f"{path}/resume", admin)
    assert (status, resumed["paused"], resumed["nextRunAt"]) == (200, False, made["nextRunAt"])
    status, changed = await call(server, "PATCH", path, admin, json={"input": {"format": "xlsx"}, "source": None})
    assert (status, changed["input"], changed["cron"]) == (200, {"format": "xlsx"}, "0 3 * * *")
    assert await call(server, "DELETE", path, admin) == (204, "")
    status, answer = await call(server, "GET", path, admin)
    assert made["id"] in assert_error(status, answer, 404, "not_found")


BAD: list[Any] = [
    pytest.param({**GOOD, "cron": "0 3 * *"}, "cron", id="cron-four-fields"),
    pytest.param({**GOOD, "cron": "0 24 * * *"}, "cron", id="cron-bad-hour"),
    pytest.param({**GOOD, "cron": "every day"}, "cron", id="cron-words"),
    pytest.param({**GOOD, "cron": 3}, "cron", id="cron-not-a-string"),
    pytest.param({**GOOD, "timezone": "Europe/Atlantis"}, "timezone", id="timezone-unknown"),
    pytest.param({**GOOD, "timezone": ""}, "timezone", id="timezone-empty"),
    pytest.param({**GOOD, "job": "export"}, "job", id="job-no-operation"),
    pytest.param({**GOOD, "job": "Work book:export"}, "job", id="job-bad-domain"),
    pytest.param({**GOOD, "job": "workbook:ex port"}, "job", id="job-bad-operation"),
    pytest.param({k: v for k, v in GOOD.items() if k != "job"}, "job", id="job-missing"),
    pytest.param({**GOOD, "input": [1]}, "input", id="input-not-an-object"),
    pytest.param({**GOOD, "source": "wb_nothere"}, "source", id="source-unknown"),
    pytest.param({**GOOD, "every": "day"}, "every", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
async def test_bad_input_is_a_422_naming_the_field_and_nothing_is_written(server: Server, body: Any,
                                                                          field: str) -> None:
    before = await snapshot(server)
    status, answer = await call(server, "POST", f"{API}/schedules", server.admin_token, json=body)
    assert_error(status, answer, 422, "invalid")
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    assert await snapshot(server) == before


async def test_a_bad_change_is_a_422_naming_the_field(server: Server) -> None:
    _, made = await call(server, "POST", f"{API}/schedules", server.admin_token, json=GOOD)
    path = f"{API}/schedules/{made['id']}"
    for body, field in (({"cron": None}, "cron"), ({"timezone": "Nowhere/Land"}, "timezone"),
                        ({"job": "nope"}, "job"), ({"paused": True}, "paused")):
        status, answer = await call(server, "PATCH", path, server.admin_token, json=body)
        assert_error(status, answer, 422, "invalid")
        assert [d["field"] for d in answer["error"]["details"]] == [field], answer
    status, answer = await call(server, "POST", f"{API}/schedules", server.admin_token, data=b"{not json")
    assert_error(status, answer, 422, "invalid")
    assert await call(server, "GET", path, server.admin_token) == (200, made), "unchanged"
