"""A real headless Chromium (Debian's, driven by Playwright: no browser download) that may reach only
the loopback and local files. Outside CI a test skips where Chromium is not installed; in CI a skip
fails the run (conftest) and `.ci/run` installs it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOCAL = ("file:", "data:", "blob:", "http://127.0.0.1:", "ws://127.0.0.1:")

# Every row of the first table under `root` as {column header: the cell's rendered text}.
TABLE_ROWS = """(root) => {
    const table = document.querySelector(root + ' table');
    if (!table) return null;
    const heads = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
    return [...table.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
        [...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.innerText.trim()])));
}"""

# Elements Markdown makes out of text (links, quotes, emphasis, code, headings, lists, raw HTML).
MARKUP = "a, blockquote, em, strong, code, del, s, b, i, h1, h2, h3, h4, h5, h6, ul, ol, li, img, hr"


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[tuple[Any, list[str]]]:
    """(page, refused URLs): a page whose requests outside the loopback and files are refused."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-first-run", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": width, "height": height})

        def route(r: Any) -> None:
            if r.request.url.startswith(LOCAL):
                r.continue_()
            else:
                refused.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        try:
            yield context.new_page(), refused
        finally:
            browser.close()
