"""The web page: static HTML, CSS and JavaScript modules (no build step) served beside the API.

The page is `/` (its views are hash routes: `/#/jobs/jb_...`) and its files are under
`/static/`. Every answer carries a Content-Security-Policy that allows scripts, styles and
connections from this origin only and no inline code, so text a listener or a user wrote could
not run even if it reached the page as HTML (it does not: the page only ever sets textContent).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from listener.errors import NotFound

__all__ = ["CSP", "HEADERS", "STATIC", "TYPES", "add_routes", "send"]

STATIC = (Path(__file__).parent / "static").resolve()

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load (ETag / Last-Modified), so a new version shows without a hard reload.
    "Cache-Control": "no-cache",
}

# Only these kinds of files are served; anything else under static/ is not part of the page.
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def add_routes(app: web.Application) -> None:
    """Serve the page at `/` and its files at `/static/...` on `app`."""
    app.router.add_get("/", index, name="web_index")
    app.router.add_get("/static/{path:.+}", static, name="web_static")


async def index(request: web.Request) -> web.StreamResponse:
    """The page itself; every view is a hash route inside it."""
    return send(STATIC / "index.html")


async def static(request: web.Request) -> web.StreamResponse:
    """One of the page's files: a script module, the stylesheet, an icon."""
    relative = request.match_info["path"]
    path = (STATIC / relative).resolve()
    if not path.is_relative_to(STATIC) or path.suffix not in TYPES or not path.is_file():
        raise NotFound(f"No such file: /static/{relative}.")
    return send(path)


def send(path: Path) -> web.FileResponse:
    """A file of the page, with its type and the security headers."""
    return web.FileResponse(path, headers={**HEADERS, "Content-Type": TYPES[path.suffix]})
