"""Signed download links: a web page downloads a CSV or a file without the bearer token in its URL."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import ManualClock, Server

pytestmark = pytest.mark.anyio


async def post(server: Server, token: str, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.post(f"{server.url}{path}", json=body) as r:
            return r.status, await r.json()


async def get(server: Server, url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:  # no token: the link is the credential
        async with http.get(f"{server.url}{url}") as r:
            return r.status, await r.read()


async def test_a_signed_link_downloads_without_a_token_until_it_expires(server: Server, clock: ManualClock) -> None:
    token = await server.token("mia")
    api = server.platform.api.as_actor("mia")
    job = await api.jobs.create(type="workbook", operation="export")
    await server.platform.api.jobs.ack(job.id)
    await server.platform.api.jobs.write_data(job.id, [{"name": "Ann"}])
    status, link = await post(server, token, "/api/v1/links", {"path": f"/api/v1/jobs/{job.id}/data.csv"})
    assert status == 200 and link["url"].startswith(f"/api/v1/jobs/{job.id}/data.csv?expires=")
    assert token not in link["url"]
    assert await get(server, link["url"]) == (200, b"name\r\nAnn\r\n")
    tampered = link["url"].replace("user=mia", "user=admin")
    assert (await get(server, tampered))[0] == 401
    other_path = link["url"].replace("data.csv", "errors.csv")
    assert (await get(server, other_path))[0] == 401, "a link is for its one path"
    clock.advance(301)
    status, body = await get(server, link["url"])
    assert status == 401 and b"expired" in body


async def test_a_link_is_only_as_good_as_its_signer(server: Server) -> None:
    admin_job = await server.platform.api.as_actor("admin").jobs.create(type="workbook", operation="export")
    token = await server.token("mia")
    status, link = await post(server, token, "/api/v1/links", {"path": f"/api/v1/jobs/{admin_job.id}/errors.csv"})
    assert status == 200
    assert (await get(server, link["url"]))[0] == 404, "mia may not read the admin's job, by link or not"
    status, link = await post(server, server.admin_token, "/api/v1/links",
                              {"path": f"/api/v1/jobs/{admin_job.id}/errors.csv"})
    assert await get(server, link["url"]) == (200, b"item,message,time\r\n")


async def test_links_are_only_for_downloads(server: Server) -> None:
    job = await server.platform.api.jobs.create(type="workbook", operation="export")
    status, error = await post(server, server.admin_token, "/api/v1/links", {"path": f"/api/v1/jobs/{job.id}"})
    assert status == 422 and error["error"]["details"] == [{"field": "path", "message": "not a download"}]
    status, link = await post(server, server.admin_token, "/api/v1/links",
                              {"path": f"/api/v1/jobs/{job.id}/errors.csv"})
    query = link["url"].split("?", 1)[1]
    assert (await get(server, f"/api/v1/jobs/{job.id}?{query}"))[0] == 401, "a JSON endpoint still needs the token"
    assert (await get(server, f"/api/v1/jobs/{job.id}/errors.csv"))[0] == 401
