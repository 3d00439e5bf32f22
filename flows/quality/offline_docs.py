"""Data Docs that render without internet: the CDN assets of GX's templates served from copies.

GX Core's page templates load bootstrap, jQuery, Font Awesome, bootstrap-table, the datepicker,
the dark theme and Vega from CDNs, and the GX logo from S3 (with the data context's id in the
URL). Offline the index stays empty and the status icons are missing; online the browser tells
third parties each time someone opens a page. After every build pgtender copies the pinned,
licensed files in ``docs_assets/`` (package data) into the site and points every page at them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

VENDOR = "static/vendor"

_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs/"
_TABLE = "https://unpkg.com/bootstrap-table@"
_FILTER = "/dist/extensions/filter-control/bootstrap-table-filter-control"

# The URL each template writes -> the copy under static/vendor/ (docs_assets/README.md: versions).
ASSETS: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    _CDNJS + "popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    _CDNJS + "font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    _CDNJS + "bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/bootstrap-datepicker.min.css"
    ),
    _CDNJS + "bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/bootstrap-datepicker.min.js"
    ),
    _TABLE + "1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    _TABLE + "1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    _TABLE + "1.19.1" + _FILTER + ".min.js": "bootstrap-table/bootstrap-table-filter-control.min.js",
    _TABLE + "1.19.0" + _FILTER + ".css": "bootstrap-table/bootstrap-table-filter-control.min.css",
    _TABLE + "1.19.0" + _FILTER + ".min.css": "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark/bootstrap-prefers-dark.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega/vega-embed.min.js",
}

# The GX logo and images from S3, with or without the "?d=<data context id>" that GX appends.
_S3_IMAGE = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)(\?[^\"')\s]*)?"
)
_URL_ATTR = re.compile(r"""\b(src|href)=(["'])(https?://[^"']+)\2""")
# Resources a page loads by itself (what a browser fetches without a click): scripts, styles, images.
_LOADED = re.compile(r"""<(script|link|img)\b[^>]*?\b(?:src|href)=["'](https?://[^"']+)["']""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*["']?(https?://[^"')]+)""")
_CSS_URL_S3 = re.compile(r"""url\(\s*(["']?)(https://great-expectations-web-assets[^"')]+)""")
_SRI = re.compile(r"""\s+(integrity|crossorigin)=(["'])[^"']*\2""")
_LOCAL_IMAGE = {"full_logo_dark.png": "logo-long.png"}  # the dark-theme logo GX keeps only on S3


def make_offline(site: Path, pages: Iterable[Path] | None = None) -> list[str]:
    """Copy the assets into ``site`` and rewrite its pages (``pages``, default all) and styles.

    Idempotent (a rebuilt site is rewritten again). Returns what still points outside the site
    and would load by itself among those pages and the styles (empty when they render offline).
    """
    assets = resources.files("flows.quality") / "docs_assets"
    with resources.as_file(assets) as source:
        shutil.copytree(source, site / VENDOR, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    chosen = sorted(site.rglob("*.html") if pages is None else pages)
    for page in chosen:
        _rewrite(page, site, _rewrite_html)
    for style in (site / "static" / "styles").glob("*.css"):
        _rewrite(style, site, _rewrite_css)
    return external_loads(site, chosen)


def external_loads(site: Path, pages: Iterable[Path] | None = None) -> list[str]:
    """Every script, stylesheet, image or CSS url() in the site (its ``pages``, default all) that a
    browser would fetch remotely."""
    found: list[str] = []
    for page in sorted(site.rglob("*.html") if pages is None else pages):
        found += [
            f"{page.relative_to(site)}: {m.group(2)}" for m in _LOADED.finditer(page.read_text("utf-8"))
        ]
    for style in sorted(site.rglob("*.css")):
        if VENDOR in style.relative_to(site).as_posix():
            continue  # the vendored files only refer to each other (and data: URIs)
        found += [
            f"{style.relative_to(site)}: {m.group(1)}" for m in _CSS_URL.finditer(style.read_text("utf-8"))
        ]
    return found


def _rewrite(path: Path, site: Path, rewrite: Callable[[str, str], str]) -> None:
    text = path.read_text("utf-8")
    new = rewrite(text, os.path.relpath(site, path.parent))
    if new != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new, "utf-8")
        tmp.replace(path)


def _rewrite_html(text: str, root: str) -> str:
    def attr(m: re.Match[str]) -> str:
        local = _local(m.group(3), root)
        return m.group(0) if local is None else f"{m.group(1)}={m.group(2)}{local}{m.group(2)}"

    def tag(m: re.Match[str]) -> str:
        rewritten = _URL_ATTR.sub(attr, m.group(0))
        # A local copy cannot carry the CDN's subresource-integrity and CORS attributes.
        return _SRI.sub("", rewritten) if rewritten != m.group(0) else rewritten

    text = re.sub(r"<(?:script|link|img)\b[^>]*>", tag, text, flags=re.IGNORECASE)
    # Inline styles (the navbar's dark-theme logo) point at S3 too.
    return _CSS_URL_S3.sub(lambda m: f"url({m.group(1)}{_local(m.group(2), root) or m.group(2)}", text)


def _rewrite_css(text: str, root: str) -> str:
    # Styles live in static/styles/: the images are a sibling folder away.
    return _S3_IMAGE.sub(lambda m: f"../images/{_LOCAL_IMAGE.get(m.group(1), m.group(1))}", text)


def _local(url: str, root: str) -> str | None:
    if url in ASSETS:
        return f"{root}/{VENDOR}/{ASSETS[url]}"
    image = _S3_IMAGE.fullmatch(url)
    if image:
        return f"{root}/static/images/{_LOCAL_IMAGE.get(image.group(1), image.group(1))}"
    return None
