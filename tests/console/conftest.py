"""Browser tests of the console: real headless Chromium (Debian's /usr/bin/chromium, installed by `make test`)
driven by Playwright against pytest-django's live server on PostgreSQL.

Playwright's synchronous API runs an event loop in the test's thread while it is started, and Django refuses ORM
calls from a thread with a running loop unless told that this is safe; here it is (the ORM calls are the test's
own set-up, made between browser steps, never from inside the loop), hence DJANGO_ALLOW_ASYNC_UNSAFE, set for the
browser tests only. Playwright is started and stopped around each test, so that no loop outlives it (later tests
call ``asyncio.run``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# Where the walks save their screenshots: docs/screenshots/ only when asked (`make screenshots`), so that a plain
# `make test` leaves the tree as it found it.
SCREENSHOTS = Path(os.environ.get("AICP_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "aicp-screenshots")
VIEWPORT = {"width": 1280, "height": 900}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def chromium(monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server):
    """A fresh browser profile per test, opening pages relative to the live server."""
    context = chromium.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def screenshot(page, name: str) -> None:
    """Save the whole page as <SCREENSHOTS>/<name>.png (``make screenshots``: docs/screenshots/, which the README
    links)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
