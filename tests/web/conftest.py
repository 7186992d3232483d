"""The web page in a real browser: Playwright driving Debian's Chromium against a real `listener serve`.

Never a downloaded browser: the tests use /usr/bin/chromium (installed by .ci/run with apt) and skip
without it, except under LISTENER_REQUIRE_ALL=1, where a missing Chromium fails the run. Time is
controlled by waiting on what the page shows (Playwright's `expect`), never by sleeping.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Download, Page, async_playwright, expect

from tests.conftest import Server, needs

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

EXPECTED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

expect.set_options(timeout=10_000)


@pytest.fixture
def db_url(db_path: Path) -> str:
    """SQLite only: the page is the same over either store, and the browser tests keep to ~a minute."""
    return f"sqlite:///{db_path}"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop per module, so that its tests share one browser (each still gets its own tab and server)."""
    return "asyncio"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        needs("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Web:
    """One browser tab on the test server, recording console errors, uncaught exceptions and alerts."""

    page: Page
    server: Server
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def record(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") and not any(p.search(message.text) for p in self.allowed):
            self.errors.append(f"{message.type}: {message.text}")

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def allow(self, pattern: str) -> None:
        """A console message this test expects (a 401 while signing in with a bad token)."""
        self.allowed.append(re.compile(pattern))

    async def sign_in(self, token: str, route: str = "/jobs") -> None:
        """Open the page at `route` and sign in with `token`; returns once the event stream is live."""
        await self.page.goto(f"{self.server.url}/#{route}")
        await self.page.get_by_label("Access token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.locator("#app")).to_be_visible()
        await expect(self.page.locator("#live")).to_have_text("Live")

    async def goto(self, route: str) -> None:
        """Go to an in-app route, as a link would."""
        await self.page.evaluate("route => { window.location.hash = route; }", f"#{route}")

    def row(self, job_id: str) -> object:
        return self.page.locator(f'table.jobs tbody tr[data-job-id="{job_id}"]')

    async def download(self, click: object) -> tuple[str, bytes]:
        """Run `click()` (an awaitable factory) and return the download's suggested name and bytes."""
        async with self.page.expect_download() as info:
            await click()  # type: ignore[operator]
        done: Download = await info.value
        path = await done.path()
        return done.suggested_filename, Path(path).read_bytes()

    def assert_clean(self) -> None:
        assert self.errors == [], "the page logged errors"
        assert self.dialogs == [], "the page opened alert/confirm/prompt dialogs"


@pytest.fixture
async def web(browser: Browser, server: Server) -> AsyncIterator[Web]:
    """A tab on the test server; every test ends with no console errors and no alerts (or says which)."""
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    tab = Web(page, server)
    tab.record()
    try:
        yield tab
        tab.assert_clean()
    finally:
        await context.close()
