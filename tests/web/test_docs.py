"""The API docs in a real browser: Swagger UI renders our OpenAPI document under the page's CSP, with no token."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from listener.platform.web import STATIC
from listener.platform.web.docs import FILES, SWAGGER_UI
from tests.conftest import Server
from tests.web.conftest import EXPECTED_CSP, Web
from tests.web.test_static import fetch

pytestmark = pytest.mark.anyio


def assert_page_headers(headers: dict[str, str], kind: str, path: str) -> None:
    assert headers["Content-Type"] == kind, path
    assert headers["Content-Security-Policy"] == EXPECTED_CSP, path  # the web page's, no looser
    assert headers["X-Content-Type-Options"] == "nosniff", path
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer", path


async def test_the_docs_page_and_swagger_ui_s_files_need_no_token(server: Server) -> None:
    status, headers, page = await fetch(server, "/api/docs")
    assert status == 200
    assert_page_headers(headers, "text/html; charset=utf-8", "/api/docs")
    assert b'<script src="/api/docs/swagger-ui-bundle.js"></script>' in page
    assert b'<script type="module" src="/static/js/docs.js"></script>' in page
    for name, kind in SWAGGER_UI.items():
        status, headers, body = await fetch(server, f"/api/docs/{name}")
        assert status == 200, name
        assert_page_headers(headers, kind, name)
        assert body == (FILES / name).read_bytes(), "the package's file as it ships"
    status, headers, body = await fetch(server, "/static/js/docs.js")
    assert status == 200 and headers["Content-Type"] == "text/javascript; charset=utf-8" and b"SwaggerUIBundle" in body


async def test_the_docs_render_the_document_openapi_json_answers_which_keeps_its_token(server: Server) -> None:
    status, headers, rendered = await fetch(server, "/api/docs/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Content-Security-Policy"] == EXPECTED_CSP
    status, _, document = await fetch(server, "/api/v1/openapi.json", Authorization=f"Bearer {server.admin_token}")
    assert status == 200 and rendered == document  # byte for byte
    status, _, _ = await fetch(server, "/api/v1/openapi.json")
    assert status == 401, "openapi.json is as it was: it needs a token"


async def test_only_the_files_the_docs_load_are_served(server: Server) -> None:
    assert (FILES / "index.html").is_file() and (FILES / "swagger-initializer.js").is_file()
    for path in ["/api/docs/index.html", "/api/docs/swagger-initializer.js", "/api/docs/swagger-ui.js.map",
                 "/api/docs/..%2f..%2f__init__.py", "/api/docs/nope.css"]:
        status, headers, _ = await fetch(server, path)
        assert status == 404 and headers["Content-Type"].startswith("application/json"), path


def test_the_docs_page_has_no_inline_code() -> None:
    html = (STATIC / "docs.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "an inline script"
    assert re.findall(r"<style\b|\sstyle=|\son[a-z]+=", html) == [], "an inline style or handler"


async def test_the_docs_render_our_operations_without_a_token(web: Web) -> None:
    responses: list[tuple[str, int]] = []
    web.page.on("response", lambda r: responses.append((r.url, r.status)))
    await web.page.goto(f"{web.server.url}/api/docs")
    operation = web.page.locator("#operations-jobs-get_job")
    await expect(operation).to_be_visible()
    await expect(operation).to_contain_text("/api/v1/jobs/{jobId}")
    await expect(web.page.locator(".info .title")).to_contain_text("Listener")
    assert all(url.startswith(web.server.url) for url, _ in responses), "nothing from elsewhere"
    assert all(status == 200 for _, status in responses), responses


async def test_signed_in_on_the_page_try_it_out_sends_the_tab_s_token(web: Web) -> None:
    await web.sign_in(web.server.admin_token)
    await web.page.goto(f"{web.server.url}/api/docs")
    operation = web.page.locator("#operations-users-me")
    await expect(operation).to_be_visible()
    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Try it out").click()
    await operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table tbody .response")
    await expect(answer.locator(".response-col_status")).to_have_text("200")
    await expect(answer).to_contain_text('"role": "admin"')
