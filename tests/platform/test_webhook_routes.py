"""The webhooks' REST routes: admins only, 422 naming the field, 404 for an unknown id, the secret once."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.anyio


async def call(server: Server, method: str, path: str, token: str | None = None, **kw: object) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token or server.admin_token}"}
    async with aiohttp.ClientSession() as session, session.request(method, f"{server.url}/api/v1{path}",
                                                                   headers=headers, **kw) as r:  # type: ignore[arg-type]
        return r.status, (await r.json() if r.status != 204 else None)


async def test_admins_create_list_pause_and_delete(server: Server) -> None:
    status, body = await call(server, "POST", "/webhooks", json={"url": "http://127.0.0.1:9/x", "topics": ["job:*"],
                                                                  "filter": {"job": "workbook:export"}})
    assert status == 201 and isinstance(body, dict)
    hook, secret = body["webhook"], body["secret"]
    assert secret.startswith("whsec_") and hook["status"] == "active" and "secret" not in hook
    status, listed = await call(server, "GET", "/webhooks")
    assert status == 200 and listed == {"items": [hook]}
    assert "whsec_" not in str(listed)
    status, paused = await call(server, "POST", f"/webhooks/{hook['id']}/pause")
    assert status == 200 and isinstance(paused, dict) and paused["status"] == "paused"
    status, deliveries = await call(server, "GET", f"/webhooks/{hook['id']}/deliveries?limit=10")
    assert (status, deliveries) == (200, {"items": []})
    assert (await call(server, "DELETE", f"/webhooks/{hook['id']}"))[0] == 204
    status, missing = await call(server, "GET", f"/webhooks/{hook['id']}")
    assert status == 404 and isinstance(missing, dict) and missing["error"]["code"] == "not_found"


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x", "topics": ["job:*"]}, "url"),
    ({"url": "example.com/x", "topics": ["job:*"]}, "url"),
    ({"url": "https://example.com/x", "topics": []}, "topics"),
    ({"url": "https://example.com/x", "topics": ["job:"]}, "topics"),
    ({"url": "https://example.com/x", "topics": ["job:*"], "filter": {"nope": 1}}, "filter"),
    ({"url": "https://example.com/x", "topics": "job:*"}, "topics"),
    ({"url": "https://example.com/x", "topics": ["job:*"], "secret": "mine"}, "secret"),
    ({"topics": ["job:*"]}, "url"),
])
async def test_bad_bodies_are_422_naming_the_field(server: Server, body: dict[str, object], field: str) -> None:
    status, answer = await call(server, "POST", "/webhooks", json=body)
    assert status == 422 and isinstance(answer, dict)
    assert answer["error"]["code"] == "invalid"
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    assert field in answer["error"]["message"]


async def test_members_and_agents_are_forbidden(server: Server) -> None:
    for role in ("member", "agent"):
        token = await server.token(f"someone-{role}", role)
        for method, path in (("GET", "/webhooks"), ("POST", "/webhooks"), ("GET", "/webhooks/wh_x/deliveries")):
            status, answer = await call(server, method, path, token, json={"url": "https://x.io", "topics": ["a"]})
            assert status == 403 and isinstance(answer, dict) and answer["error"]["code"] == "forbidden"


async def test_deliveries_limit_is_validated(server: Server) -> None:
    status, answer = await call(server, "GET", "/webhooks/wh_x/deliveries?limit=0")
    assert status == 422 and isinstance(answer, dict) and answer["error"]["details"][0]["field"] == "limit"
    status, answer = await call(server, "GET", "/webhooks/wh_x/deliveries")
    assert status == 404
