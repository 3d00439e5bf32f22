"""Data Docs rendered from the recorded rows, and the GX runner for expectations the scan lacks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from checks import WARN, Suite, all_suites
from flows.core.db import load_sql
from flows.core.policy.settings import QualityPolicy
from flows.quality.compiler import Window
from flows.quality.gx_validation import gx_outcomes
from flows.quality.options import sample_size_for

Conn = psycopg.Connection[tuple[Any, ...]]


def build_docs(
    conn: Conn,
    state_dir: Path,
    window: Window,
    suite_names: Sequence[str],
    run_name: str,
    *,
    keep_days: int,
    full: bool = True,
) -> Path:
    """Render the recorded current results of the window as a GX Data Docs site.

    Each suite's validation result carries the suite row's verdict (``success`` is False exactly
    when pgtender's status is failed or error) and each expectation its severity, as GX's own
    ``FailureSeverity`` (``error`` -> critical, ``warn`` -> warning). ``full=False``: the
    validation pages only (``gx_docs.build_data_docs``).
    """
    from flows.quality import gx_docs as gx_runtime  # noqa: PLC0415

    rows = conn.execute(
        load_sql("queries/quality/docs_rows.sql"),
        {"s": window.start, "e": window.end, "suites": list(suite_names)},
    ).fetchall()
    known = all_suites()
    by_suite: dict[str, gx_runtime.DocsSuite] = {}
    for suite_name, target, name, status, details, sample, expected, score in rows:
        if suite_name not in known:
            continue
        entry = by_suite.get(suite_name)
        if entry is None:
            entry = by_suite[suite_name] = gx_runtime.DocsSuite(suite_name, target, window, [])
        if name == f"quality.{suite_name}":
            entry.status = status
            entry.verdict = {
                "score": score,
                "threshold": (expected or {}).get("min_score"),
                "verdict": (details or {}).get("verdict"),
            }
            continue
        kwargs = {k: v for k, v in (expected or {}).items() if k != "type"}
        entry.results.append(
            gx_runtime.DocsResult(
                key=name.rsplit(".", 1)[-1],
                type=details.get("gx_type", expected.get("type")),
                kwargs=kwargs,
                status=status,
                result=details.get("result") or {},
                sample=sample,
                error=details.get("error"),
                severity=details.get("severity", WARN),
            )
        )
    return gx_runtime.build_data_docs(
        state_dir, run_name, list(by_suite.values()), keep_days=keep_days, full=full
    )


def gx_runner(policy: QualityPolicy, state_dir: Path, dsn: str) -> Any:
    """Expectation types the fused scan lacks run through GX (imported only when one does)."""

    def runner(suite: Suite, window: Any, facts: list[Any]) -> list[Any]:
        return gx_outcomes(state_dir, dsn, suite, window, facts, sample_size=sample_size_for(suite, policy))

    return runner
