"""The API docs for people: Swagger UI at /api/docs, rendering this server's OpenAPI document.

Swagger UI's own files come from the swagger-ui-bundle-v2 package, served from where it is installed:
no CDN, and nothing of theirs copied into this repository. The page that starts it (static/docs.html
and static/js/docs.js) is ours, and like the web page every answer carries a Content-Security-Policy
that allows this origin only and no inline code.

The page, its files and the document it renders need no token: they describe the API, which is the
same on every server, and every call they let a person try needs one. The document is the very
bytes `/api/v1/openapi.json` answers, which still needs its token as every endpoint but health does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from listener.errors import NotFound
from listener.platform.web import HEADERS, STATIC, TYPES, send

__all__ = ["DOCS", "SWAGGER_UI", "add_routes"]

DOCS = "/api/docs"

# The files of Swagger UI the page loads; nothing else of the package is served.
SWAGGER_UI = {
    "swagger-ui-bundle.js": TYPES[".js"],
    "swagger-ui.css": TYPES[".css"],
    "favicon-32x32.png": TYPES[".png"],
}

FILES = Path(swagger_ui_path)
"""Where the installed package keeps Swagger UI's files."""

DOCUMENT: web.AppKey[Callable[[], bytes]] = web.AppKey("openapi_document")


def add_routes(app: web.Application, document: Callable[[], bytes]) -> None:
    """Serve the docs at `/api/docs` on `app`, rendering `document()` (the OpenAPI document's JSON)."""
    app[DOCUMENT] = document
    app.router.add_get(DOCS, page, name="web_docs")
    app.router.add_get(f"{DOCS}/openapi.json", openapi_json, name="web_docs_openapi")
    app.router.add_get(f"{DOCS}/{{name}}", swagger_ui, name="web_docs_swagger_ui")


async def page(request: web.Request) -> web.StreamResponse:
    """The docs page: Swagger UI started by static/js/docs.js."""
    return send(STATIC / "docs.html")


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document the page renders."""
    return web.Response(body=request.app[DOCUMENT](), headers={**HEADERS, "Content-Type": "application/json"})


async def swagger_ui(request: web.Request) -> web.StreamResponse:
    """One of Swagger UI's files, from the installed package."""
    name = request.match_info["name"]
    if name not in SWAGGER_UI:
        raise NotFound(f"No such file: {DOCS}/{name}.")
    return web.FileResponse(FILES / name, headers={**HEADERS, "Content-Type": SWAGGER_UI[name]})
