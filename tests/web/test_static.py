"""How the page is served, and the event stream's token for browsers: no browser needed."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
import yarl

from listener.platform.web import CSP, STATIC
from tests.conftest import Server
from tests.web.conftest import EXPECTED_CSP

pytestmark = pytest.mark.anyio



async def fetch(server: Server, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(server.url + path, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_the_page_and_its_files_carry_the_security_headers(server: Server) -> None:
    assert CSP == EXPECTED_CSP
    for path, kind in [("/", "text/html"), ("/static/js/main.js", "text/javascript"), ("/static/app.css", "text/css"),
                       ("/static/favicon.svg", "image/svg+xml")]:
        status, headers, body = await fetch(server, path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind), path
        assert headers["Content-Security-Policy"] == EXPECTED_CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer", path
        assert body, path
    _, _, page = await fetch(server, "/")
    assert b'<script type="module" src="/static/js/main.js"></script>' in page


async def test_only_the_page_files_are_served(server: Server) -> None:
    for path in ["/static/js/nope.js", "/static/..%2f__init__.py", "/static/%2e%2e/__init__.py",
                 "/static/../../../../pyproject.toml", "/jobs"]:
        status, headers, body = await fetch(server, path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("application/json"), path
    status, _, body = await fetch(server, "/api/v1/health")
    assert status == 200 and b'"ok"' in body, "the API is where it was"


def test_no_inline_code_and_no_html_from_strings() -> None:
    """What the CSP enforces, and what the page promises: text is never parsed as HTML."""
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "an inline script"
    assert re.findall(r"<style\b|\sstyle=|\son[a-z]+=", html) == [], "an inline style or handler"
    scripts = sorted(Path(STATIC / "js").rglob("*.js"))
    assert len(scripts) >= 10
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                           r"createContextualFragment|DOMParser|\.style\s*=|setAttribute\(\s*[\"']style")
    for script in scripts:
        found = forbidden.findall(script.read_text())
        assert found == [], f"{script.name} uses {found}"


async def test_the_stream_takes_a_browsers_token_as_a_subprotocol(server: Server) -> None:
    token = await server.token("mia")
    url = f"{server.url}/api/v1/events/stream"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=("listener.bearer", token)) as ws:
            assert ws.protocol == "listener.bearer", "the server names the protocol, never echoes the token"
            ready = await ws.receive_json(timeout=5)
            assert ready["type"] == "ready"
        wrong = "lst_not-a-token-at-all"
        for protocols in [("listener.bearer", wrong), (token, "listener.bearer"), ("listener.bearer",)]:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with http.ws_connect(url, protocols=protocols):
                    pass
            assert refused.value.status == 401, protocols
        # Only the stream takes it: everywhere else the token goes in the Authorization header.
        async with http.get(f"{server.url}/api/v1/users/me",
                            headers={"Sec-WebSocket-Protocol": f"listener.bearer, {token}"}) as r:
            assert r.status == 401
        # A client that sends the header and no subprotocol is answered as before.
        async with http.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ws.protocol is None
            assert (await ws.receive_json(timeout=5))["type"] == "ready"


async def test_nothing_outside_the_page_files_is_served(server: Server) -> None:
    outside = Path(__file__).resolve().parents[2] / "docs" / "jobs.png"
    assert outside.exists() and outside.suffix == ".png"  # a kind of file the page may serve, but not this one
    async with aiohttp.ClientSession() as http:
        for path in ["/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/docs/jobs.png", "/static/..%2f..%2f..%2f..%2fdocs/jobs.png",
                     "/static/js/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/docs/jobs.png"]:
            async with http.get(yarl.URL(server.url + path, encoded=True)) as r:
                assert r.status == 404, path


def test_the_readme_shows_each_page() -> None:
    root = Path(__file__).resolve().parents[2]
    shown = set(re.findall(r"\]\((docs/[\w-]+\.png)\)", (root / "README.md").read_text()))
    assert [name for name in sorted(shown) if not (root / name).is_file()] == [], "the README shows what exists"
    # What docs/screenshots.py takes: each one is in the README.
    taken = set(re.findall(r'shoot\(\w+, "([\w-]+)"', (root / "docs" / "screenshots.py").read_text()))
    assert {"jobs", "job", "sheet", "overlay", "outcome", "workbooks", "files", "document", "signin"} <= taken
    assert {f"docs/{name}.png" for name in taken} <= shown
