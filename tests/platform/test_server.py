"""The REST API over a real server: statuses, error bodies, auth and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.anyio


async def call(server: Server, method: str, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.request(method, server.url + path, headers=headers,
                                                                    **kw) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


async def test_health_needs_no_token_and_nothing_else_answers_without_one(server: Server) -> None:
    assert await call(server, "GET", "/api/v1/health") == (200, {"status": "ok", "version": "0.1.0"})
    status, body = await call(server, "GET", "/api/v1/jobs")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await call(server, "GET", "/api/v1/jobs", token="lst_not-a-real-token-at-all")
    assert status == 401


async def test_create_answers_202_with_location(server: Server) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.admin_token}"}) as session:
        async with session.post(f"{server.url}/api/v1/jobs", json={"type": "workbook", "operation": "export"}) as r:
            assert r.status == 202
            job = await r.json()
            assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        async with session.get(server.url + r.headers["Location"]) as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"
        async with session.get(f"{server.url}/api/v1/jobs", params={"status": "ready", "limit": "100"}) as r:
            page = await r.json()
            assert page["total"] == 1 and page["items"][0]["id"] == job["id"]
