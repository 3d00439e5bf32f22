-- The backfill requests that started in [start, end) and not after the report's own instant, oldest
-- first: one row a request (the run's row; a request refused as bad input has one 'rejected' row),
-- never its per-day items. A run still 'started' whose session is gone reads as 'abandoned'.
SELECT started_at,
       CASE WHEN status = 'started' AND NOT pgtender_session_alive(pid, started_at)
            THEN 'abandoned' ELSE status END AS status,
       params, counts, error
  FROM pgtender_operations
 WHERE job = 'backfill'
   AND NOT params ? 'item'
   AND started_at >= %(start)s
   AND started_at < %(end)s
   AND started_at <= %(now)s
 ORDER BY started_at, operation_id
