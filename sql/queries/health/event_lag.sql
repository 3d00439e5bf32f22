-- Newest event that has happened (occurred_at <= now), and the worst ingestion delay among the
-- events of the lookback window. Index-backed on learning_events (occurred_at); timestamptz
-- arithmetic, so the session time zone does not matter.
SELECT (SELECT max(occurred_at) FROM learning_events WHERE occurred_at <= %(now)s) AS newest,
       (SELECT max(ingested_at - occurred_at)
          FROM learning_events
         WHERE occurred_at > %(now)s - %(lookback)s AND occurred_at <= %(now)s) AS max_delay,
       (SELECT count(*)
          FROM learning_events
         WHERE occurred_at > %(now)s - %(lookback)s AND occurred_at <= %(now)s) AS recent
