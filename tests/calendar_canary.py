"""A date-dependent test, on purpose: tests/test_calendar.py runs it on two instants to show that
the calendar matrix catches such a test (its name keeps it out of the normal collection).

It is the shape of the retention test that failed from the 1st to about the 19th of every month:
110 days of hourly rows back from now, assuming every one has a partition, while migration 0005
makes partitions from three months before the current month only.
"""

from __future__ import annotations

from tests.conftest import Database


def test_hourly_rows_of_110_days_all_have_a_partition(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " SELECT now() - g * interval '1 hour', 'e' FROM generate_series(1, 24 * 110) g"
        )
        assert conn.execute("SELECT count(*) FROM learning_events_default").fetchone()[0] == 0
