"""Every artifact pgtender publishes shows its data as written: names with Markdown in them (`>`, `|`,
`@`, `*`, backticks, line breaks, HTML, links) are escaped by flows.core.markdown.

Checked twice: with a CommonMark renderer (markdown-it-py, GFM tables), and in a real Chromium
against the UI of a real Prefect server, where the health flow's own artifact (model names from the
database) and every other publisher's artifact are read back cell by cell.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.core import markdown
from tests.browser import MARKUP, TABLE_ROWS, chromium_page
from tests.conftest import Database, flow_run

HOSTILE = [
    ">= 90 % quoted",
    "bug_likelihood_predictor@v3.0",
    "a|b|c",
    "*star* **bold** _under_ __dunder__",
    "`tick` ``double`` ```triple```",
    "two\nlines\r\nthree\tcolumns",
    "<b>html</b> &amp; [link](http://example.com) www.example.com https://x.org",
    "# heading",
    "1. ordered",
    "- bullet + plus",
    "back\\slash\\|pipe\\",
    "~~strike~~ ![img](x.png) <http://auto.link>",
    "    indented code",
    "===",
]


def _renderer() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


@pytest.mark.parametrize("value", HOSTILE)
def test_escaped_text_renders_as_written(value: str) -> None:
    rendered = _renderer().render(markdown.text(value))
    assert rendered == f"<p>{html.escape(markdown.one_line(value), quote=False)}</p>\n"


def test_markdown_tables_keep_every_cell() -> None:
    lines = markdown.table(["name", "value"], [[h, h] for h in HOSTILE], right=(1,))
    rendered = _renderer().render("\n".join(lines))
    cells = rendered.split("<tbody>\n")[1]
    expected = "".join(
        f'<tr>\n<td>{v}</td>\n<td style="text-align:right">{v}</td>\n</tr>\n'
        for v in (html.escape(markdown.one_line(h), quote=False) for h in HOSTILE)
    )
    assert cells == expected + "</tbody>\n</table>\n"


def _prefect_ui_code(text: str) -> str:
    """What the Prefect UI shows of a code block's text: it decodes these entities (``&amp;`` last)."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text


def test_a_code_block_holds_any_text() -> None:
    content = "```\nnot the end\n````\n~~~\n&lt; &amp;amp; " + "\n".join(HOSTILE).replace("\r\n", "\n")
    rendered = _renderer().render(markdown.code_block(content) + "\n\nafter")
    code = rendered.removeprefix("<pre><code>").removesuffix("\n</code></pre>\n<p>after</p>\n")
    assert code != rendered and _prefect_ui_code(html.unescape(code)) == content


def test_table_artifact_cells_escape_strings_only() -> None:
    rows = markdown.rows([{"check": "a*b*", "observed": 1.5, "threshold": None, "ok": True, "n": 3}])
    assert rows == [{"check": "a\\*b\\*", "observed": 1.5, "threshold": None, "ok": True, "n": 3}]


# ---------------------------------------------------------------- every publisher

DAY = date(2026, 3, 2)
# a report's text: fences of its own, every hostile name on lines of its own
REPORT_TEXT = "\n".join(["Data quality, week 2026-W10", "```", *HOSTILE, "````"]).replace("\r\n", "\n")


def _publishers() -> dict[str, tuple[str, Any]]:
    """artifact key -> (kind, content) as each pgtender publisher builds it, with hostile data."""
    from flows import report
    from flows.backfill import Item, ItemResult, Request
    from flows.backfill.summary import table_markdown
    from flows.capacity.projection import Projection
    from flows.capacity.seed import comparison_markdown
    from flows.quality.recording import markdown_summary

    summaries = [
        {"suite": h, "rows": 3, "score": 50.0, "threshold": 90.0, "status": "failed", "not_passed": [h]}
        for h in HOSTILE
    ]
    request = Request(DAY, DAY + timedelta(days=1), ("quality",))
    outcomes = {
        Item("quality", d.isoformat()): ItemResult("quality", d.isoformat(), "problems", HOSTILE[i])
        for i, d in enumerate(request.days)
    }
    now = datetime(2026, 3, 3, tzinfo=UTC)
    soon = [
        Projection("total_bytes", "table", h, 9, 8.0, 1e6, 1e9, 30, 2e9, 1.5e9, now + timedelta(days=3), now)
        for h in HOSTILE
    ]
    comparison = [
        {
            "component": h,
            **dict.fromkeys(
                (
                    "seed_rows_per_day",
                    "observed_rows_per_day",
                    "seed_gb_per_year",
                    "observed_gb_per_year",
                    "observed_vs_seed",
                )
            ),
        }
        for h in HOSTILE
    ]
    return {
        "t-quality-summary": ("markdown", markdown_summary(DAY, summaries, Path("/state/`x`|y/*z*"))),
        "t-backfill-summary": ("markdown", table_markdown(request, outcomes)),
        "t-capacity-projection": ("markdown", comparison_markdown(comparison, soon)),
        "t-weekly-report": ("markdown", report.artifact_markdown(" ".join(HOSTILE), "/r/`d`", REPORT_TEXT)),
        "t-fleet": ("table", markdown.rows({"target": h, "outcome": "done", "message": h} for h in HOSTILE)),
    }


def test_every_publisher_renders_its_data_as_written() -> None:
    """The data of each publisher's artifact is in its rendered text, verbatim (on one line)."""
    built = _publishers()
    quality = _renderer().render(built["t-quality-summary"][1])
    for h in HOSTILE:
        shown = html.escape(markdown.one_line(h), quote=False)
        assert f"<td>{shown}</td>" in quality
        assert f"<td>{shown}</td>" in _renderer().render(built["t-capacity-projection"][1])
        assert f"<li>table {shown} total_bytes reaches" in _renderer().render(
            built["t-capacity-projection"][1]
        )
    assert "<p>Data Docs: /state/`x`|y/*z*</p>" in quality
    backfill = _renderer().render(built["t-backfill-summary"][1])
    assert f"<li>quality {DAY}: problems: {html.escape(HOSTILE[0], quote=False)}</li>" in backfill
    weekly = _renderer().render(built["t-weekly-report"][1])
    code = weekly.split("<pre><code>")[1].split("\n</code></pre>")[0]
    assert _prefect_ui_code(html.unescape(code)) == REPORT_TEXT
    subject = html.escape(markdown.one_line(" ".join(HOSTILE)), quote=False)
    assert weekly.startswith(f"<h2>{subject}</h2>\n<p>Kept in /r/`d` (report.eml, report.html).</p>")


# ---------------------------------------------------------------- in the Prefect UI


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real `prefect server start` (API and UI), this process's flows reporting to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.edge.prefect_server import start_local_server

    server = start_local_server(tmp_path_factory.mktemp("prefect-ui"))
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        server.stop()


def _plant_models(conn: Any, now: datetime) -> None:
    """A model per hostile name, version v3.0, its accuracy dropped 50 % (the probe fails it)."""
    for name in HOSTILE:
        model = conn.execute(
            "INSERT INTO ml_models (name, version, model_type) VALUES (%s, 'v3.0', 'classifier') RETURNING id",
            (name,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO model_evaluations (model_id, metric_name, metric_value, is_baseline, evaluated_at)"
            " VALUES (%s, 'accuracy', 0.9, true, %s), (%s, 'accuracy', 0.45, false, %s)",
            (model, now - timedelta(days=3), model, now - timedelta(hours=1)),
        )


def _artifact_id(key: str, flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    assert len(found) == 1, (key, found)
    return str(found[0].id)


def _open(page: Any, server: Any, artifact_id: str) -> None:
    page.goto(f"{server.ui_url}/artifacts/artifact/{artifact_id}", wait_until="load")
    page.locator("section.artifact-data-view").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not page.evaluate(
        "() => document.querySelector('section.artifact-data-view').innerText.trim().length > 0"
    ):
        time.sleep(0.2)


def _number(text: str) -> float | None:
    return None if text == "" else float(text)


@pytest.mark.slow
def test_the_health_artifact_shows_the_databases_rows_in_the_prefect_ui(
    migrated_db: Database, prefect_ui: Any
) -> None:
    from flows.core import clock

    with migrated_db.connect() as conn:
        _plant_models(conn, clock.db_now(conn))
    state = flow_run("health")
    flow_run_id = state.state_details.flow_run_id
    with migrated_db.connect() as conn:
        rows = conn.execute(
            "SELECT check_name, target, status, expected #>> '{}', threshold,"
            "       coalesce(details ->> 'reason', details ->> 'error', details ->> 'source', '')"
            "  FROM data_quality_checks WHERE flow_run_id = %s",
            (flow_run_id,),
        ).fetchall()
    models = [r for r in rows if r[0] == "health.model_accuracy"]
    assert sorted(r[1] for r in models) == sorted(f"{h}@v3.0:accuracy" for h in HOSTILE)
    assert all(r[2] == "failed" for r in models)
    columns = ("check", "target", "status", "expected", "threshold", "note")
    expected = sorted(
        (
            markdown.one_line(check),
            markdown.one_line(target),
            status,
            markdown.one_line(limit or ""),
            threshold,
            markdown.one_line(note),
        )
        for check, target, status, limit, threshold, note in rows
    )
    with chromium_page() as (page, _refused):
        _open(page, prefect_ui, _artifact_id("health-summary", flow_run_id))
        shown = page.evaluate(TABLE_ROWS, "section.artifact-data-view")
        markup = page.evaluate(
            f"() => document.querySelectorAll('section.artifact-data-view td :is({MARKUP})').length"
        )
        page.screenshot(path=str(Path(prefect_ui.log_path).parent / "health-summary.png"), full_page=True)
    assert markup == 0  # no link, quote, emphasis, code, heading or list made out of data
    got = sorted(tuple(_number(row[c]) if c == "threshold" else row[c] for c in columns) for row in shown)
    assert got == expected


@pytest.mark.slow
def test_every_publishers_artifact_shows_its_data_in_the_prefect_ui(prefect_ui: Any) -> None:
    from prefect import flow

    from flows.edge.orchestrator import PrefectOrchestrator

    built = _publishers()

    @flow(name="artifacts-under-test")
    def publish() -> dict[str, str]:
        ids = {}
        for key, (kind, content) in built.items():
            made = PrefectOrchestrator().artifact(kind, key=key, **{kind: content})
            ids[key] = str(made)
        return ids

    ids = publish()
    one = [markdown.one_line(h) for h in HOSTILE]
    with chromium_page() as (page, _refused):
        _open(page, prefect_ui, ids["t-fleet"])
        assert page.evaluate(TABLE_ROWS, "section.artifact-data-view") == [
            {"target": h, "outcome": "done", "message": h} for h in one
        ]
        _open(page, prefect_ui, ids["t-quality-summary"])
        quality = page.evaluate(TABLE_ROWS, "section.artifact-data-view")
        assert [(r["suite"], r["not passed"]) for r in quality] == [(h, h) for h in one]
        assert "Data Docs: /state/`x`|y/*z*" in page.inner_text("section.artifact-data-view")
        _open(page, prefect_ui, ids["t-capacity-projection"])
        assert [r["component"] for r in page.evaluate(TABLE_ROWS, "section.artifact-data-view")] == one
        items = page.eval_on_selector_all(
            "section.artifact-data-view li", "els => els.map(e => e.innerText.trim())"
        )
        assert [i.split(" total_bytes reaches")[0] for i in items] == [f"table {h}" for h in one]
        _open(page, prefect_ui, ids["t-backfill-summary"])
        items = page.eval_on_selector_all(
            "section.artifact-data-view li", "els => els.map(e => e.innerText.trim())"
        )
        assert items == [f"quality {DAY + timedelta(days=i)}: problems: {one[i]}" for i in range(2)]
        _open(page, prefect_ui, ids["t-weekly-report"])
        view = page.inner_text("section.artifact-data-view")
        assert REPORT_TEXT in view
        assert markdown.one_line(" ".join(HOSTILE)) in view
        markup = page.evaluate(
            "() => [...document.querySelectorAll('section.artifact-data-view :is(td, li) :is("
            + MARKUP
            + ")')].length"
        )
    assert markup == 0
