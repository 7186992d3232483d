"""`listener webhooks ...` against a real server, as a separate process: create prints the secret once."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Server
from tests.test_cli import cli

pytestmark = pytest.mark.anyio


async def test_webhooks_commands_over_the_api(server: Server) -> None:
    code, out, _ = await cli(server, "webhooks", "create", "https://example.com/hook", "--topic", "job:failed",
                             "--topic", "job:completed", "--filter", '{"job": "workbook:*"}', "--json")
    assert code == 0
    new = json.loads(out)
    hook = new["webhook"]
    assert new["secret"].startswith("whsec_") and hook["topics"] == ["job:failed", "job:completed"]
    code, out, _ = await cli(server, "webhooks", "create", "https://example.com/other", "--topic", "job:*")
    assert code == 0 and "shown only this once" in out and "whsec_" in out
    code, out, _ = await cli(server, "webhooks", "list")
    assert code == 0 and hook["id"] in out and "active" in out and "whsec_" not in out
    code, out, _ = await cli(server, "webhooks", "pause", hook["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "paused"
    code, out, _ = await cli(server, "webhooks", "resume", hook["id"])
    assert code == 0 and "active" in out
    code, out, _ = await cli(server, "webhooks", "deliveries", hook["id"], "--json")
    assert code == 0 and json.loads(out) == {"items": []}
    code, out, _ = await cli(server, "webhooks", "delete", hook["id"])
    assert code == 0 and f"Deleted webhook {hook['id']}." in out
    code, out, err = await cli(server, "webhooks", "pause", hook["id"])
    assert code == 1 and f"Webhook {hook['id']} not found." in err


async def test_a_bad_url_and_a_member_are_one_clear_line(server: Server) -> None:
    code, _, err = await cli(server, "webhooks", "create", "ftp://example.com/x", "--topic", "job:*")
    assert code == 1 and "url" in err and "http" in err
    member = await server.token("mia")
    code, _, err = await cli(server, "webhooks", "list", token=member)
    assert code == 1 and "admin" in err
