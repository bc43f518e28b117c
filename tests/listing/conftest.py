"""The browser the viewer's tests drive: Debian's Chromium, through Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The headers the test apps take as an administrator of tenant acme.
ADMIN = {"x-role": "admin", "x-tenant": "acme"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "no chromium on PATH: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: axe-core is injected into pages whose policy allows no script at all.
    context = browser.new_context(
        extra_http_headers=ADMIN, viewport={"width": 1400, "height": 1000}, bypass_csp=True
    )
    opened = context.new_page()
    yield opened
    context.close()
