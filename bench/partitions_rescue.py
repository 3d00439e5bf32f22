"""Readers during a DEFAULT rescue (part of bench/partitions.py, ``--rescue-rows``).

One table shaped like learning_events (4 indexes, a DEFAULT partition) holds ``rows`` rows in
DEFAULT spread over 3 past months that have no partition. A reader on its own connection runs a
dashboard query back to back — ``count(*)`` of the last hour, whose ``now()`` the planner cannot
prune, so it locks every partition, DEFAULT included — first while nothing else runs (idle), then
while ``partitions.maintain_all`` rescues the rows (one month per transaction). Printed and returned:
the reader's p50 / p95 / max in both phases and p95 rescue / idle (target <= 2x).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from flows import partitions
from flows.core.policy.partitions import PartitionsPolicy

READ = "SELECT count(*) FROM {} WHERE ts >= now() - interval '1 hour'"


class Reader(threading.Thread):
    """A dashboard query back to back; latencies (ms) recorded under the current phase."""

    def __init__(self, dsn: str, table: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.query = sql.SQL(READ).format(sql.Identifier(table))
        self.phase: str | None = None
        self.samples: dict[str, list[float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            phase = self.phase
            t0 = time.perf_counter()
            self.conn.execute(self.query).fetchone()
            elapsed = (time.perf_counter() - t0) * 1000
            if phase is not None and phase == self.phase:
                self.samples.setdefault(phase, []).append(elapsed)
        self.conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def park_rows(conn: psycopg.Connection[Any], table: str, rows: int, months: list[Any]) -> None:
    """``rows`` rows spread evenly over ``months`` (month starts), all landing in DEFAULT."""
    per = rows // len(months)
    for start in months:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (ts, event_type, session_id, payload)"
                " SELECT {} + (g * interval '1 second') * (2419200.0 / {}), 'e' || (g % 20),"
                " CASE WHEN g % 3 = 0 THEN gen_random_uuid() END, jsonb_build_object('g', g)"
                " FROM generate_series(0, {} - 1) g"
            ).format(sql.Identifier(table), sql.Literal(start), sql.Literal(per), sql.Literal(per))
        )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def rescue_readers(
    dsn: str,
    table: str,
    rows: int,
    months: list[Any],
    pol: PartitionsPolicy,
    seconds: float,
    count_default: Callable[[], int],
) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        park_rows(conn, table, rows, months)
        parked = count_default()
        reader = Reader(dsn, table)
        reader.start()
        time.sleep(0.5)
        reader.phase = "idle"
        time.sleep(seconds)
        reader.phase = "rescue"
        t0 = time.perf_counter()
        results = partitions.maintain_all(conn, pol)
        rescue_s = time.perf_counter() - t0
        reader.phase = None
        reader.stop.set()
        reader.join()
    assert results is not None
    moved = sum(r.rows_moved for r in results)
    left = count_default()
    if moved != parked or left != 0:
        raise SystemExit(f"rescue bench: {parked} rows parked, {moved} moved, {left} left in DEFAULT")
    idle, busy = reader.samples["idle"], reader.samples["rescue"]
    out = {
        "rows": moved,
        "months": len(months),
        "rescue_s": round(rescue_s, 3),
        "idle_n": len(idle),
        "idle_p50_ms": round(pct(idle, 0.5), 3),
        "idle_p95_ms": round(pct(idle, 0.95), 3),
        "idle_max_ms": round(max(idle), 3),
        "rescue_n": len(busy),
        "rescue_p50_ms": round(pct(busy, 0.5), 3),
        "rescue_p95_ms": round(pct(busy, 0.95), 3),
        "rescue_max_ms": round(max(busy), 3),
    }
    out["p95_ratio"] = round(out["rescue_p95_ms"] / out["idle_p95_ms"], 2)
    print(f"\nreaders during a DEFAULT rescue: {moved} rows over {len(months)} months in {rescue_s:.2f} s")
    print(f"  reader: {READ.format(table)}")
    print(f"  {'phase':<8} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for phase, values in (("idle", idle), ("rescue", busy)):
        p50, p95 = pct(values, 0.5), pct(values, 0.95)
        print(f"  {phase:<8} {len(values):>6} {p50:>8.3f} {p95:>8.3f} {max(values):>8.3f}")
    print(f"  reader p95 rescue / idle: {out['p95_ratio']:.2f}x  (target <= 2x)")
    return out
