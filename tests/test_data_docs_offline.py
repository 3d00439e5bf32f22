"""Data Docs render with the network off: every asset local, the index filled, the icons drawn.

A real headless Chromium (Debian's, driven by Playwright) opens the site pgtender builds with
every non-file request refused and DNS pointed nowhere. Outside CI the test skips where Chromium
is not installed; in CI a skip fails the run (conftest) and `.ci/run` installs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.quality import gx_docs as gx
from flows.quality import offline_docs
from flows.quality.compiler import Window

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = Window(
    start=datetime(2026, 12, 1, tzinfo=UTC),
    end=datetime(2026, 12, 2, tzinfo=UTC),
    now=datetime(2026, 12, 2, 1, tzinfo=UTC),
)


def _site(state_dir: Path) -> Path:
    results = [
        gx.DocsResult(
            key="ids_not_null",
            type="expect_column_values_to_not_be_null",
            kwargs={"column": "id"},
            status="passed",
            result={"element_count": 100, "unexpected_count": 0, "unexpected_percent": 0.0},
        ),
        gx.DocsResult(
            key="score_in_range",
            type="expect_column_values_to_be_between",
            kwargs={"column": "score", "min_value": 0, "max_value": 1},
            status="failed",
            result={"element_count": 100, "unexpected_count": 2, "unexpected_percent": 2.0},
            sample=[1.5, 2.0],
        ),
    ]
    suite = gx.DocsSuite(name="learning_events", table="learning_events", window=WINDOW, results=results)
    return gx.build_data_docs(state_dir, "offline-check", [suite]).parent


def test_the_built_site_loads_nothing_from_the_network(tmp_path: Path) -> None:
    site = _site(tmp_path)
    assert offline_docs.external_loads(site) == []
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 3  # index, the suite, one validation
    for page in pages:
        text = page.read_text("utf-8")
        assert "amazonaws.com" not in text and "cdn.jsdelivr.net" not in text and "unpkg.com" not in text
    for local in set(offline_docs.ASSETS.values()):
        assert (site / offline_docs.VENDOR / local).is_file(), local
    # Rebuilding (every quality run does) rewrites again and keeps one copy of the assets.
    again = _site(tmp_path)
    assert again == site and offline_docs.external_loads(site) == []


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--no-first-run",
                "--disable-background-networking",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def route(r: Any) -> None:
            if r.request.url.startswith(("file:", "data:", "blob:")):
                r.continue_()
            else:
                refused.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        try:
            yield context.new_page(), refused
        finally:
            browser.close()


FONT_LOADED = """() => document.fonts.ready.then(() =>
    [...document.fonts].filter(f => f.family.includes('Font Awesome') && f.status === 'loaded').length)"""
ICONS = """(selector) => [...document.querySelectorAll(selector)].map(el => {
    const before = getComputedStyle(el, '::before');
    const box = el.getBoundingClientRect();
    return {content: before.content, font: before.fontFamily, width: box.width, height: box.height};
})"""


def test_pages_render_offline_with_their_status_icons(
    browser_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    page, refused = browser_page
    site = _site(tmp_path / "state")

    page.goto(f"file://{site / 'index.html'}", wait_until="load")
    rows = page.locator("table tbody tr")
    rows.first.wait_for(timeout=15_000)  # bootstrap-table fills the index from its JS
    assert "learning_events" in rows.first.inner_text()
    assert page.evaluate(FONT_LOADED) >= 1
    failed_icon = page.evaluate(ICONS, "i.fa-times")
    assert failed_icon and all(i["content"] not in ("none", "normal", "") for i in failed_icon)
    assert all("Font Awesome" in i["font"] and i["width"] > 0 for i in failed_icon)

    validation = next((site / "validations").rglob("*.html"))
    page.goto(f"file://{validation}", wait_until="load")
    assert page.evaluate(FONT_LOADED) >= 1
    passed = page.evaluate(ICONS, "i.fa-check-circle")
    failed = page.evaluate(ICONS, "i.fa-times")
    assert passed and failed
    for icon in passed + failed:
        assert "Font Awesome" in icon["font"] and icon["width"] > 0 and icon["height"] > 0, icon
    logo = page.locator("nav img").first
    assert logo.evaluate("img => img.complete && img.naturalWidth") > 0  # the GX logo, from the site
    shot = tmp_path / "validation.png"  # kept under pytest's tmp dir for a look
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.emulate_media(color_scheme="dark")  # the dark theme's stylesheet and logo, local too
    page.goto(f"file://{site / 'index.html'}", wait_until="load")
    page.locator("table tbody tr").first.wait_for(timeout=15_000)
    page.screenshot(path=str(tmp_path / "index-dark.png"))

    assert refused == [], f"the pages asked the network for {refused}"
