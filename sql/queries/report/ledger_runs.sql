-- Job runs recorded in the ledger that started in [start, end) and not after the report's own
-- instant (%(now)s), the report's own run (%(exclude)s) left out: it has not ended. A backfill's
-- per-day item rows are parts of its run, not runs: one backfill request is one run, and a request
-- refused as bad input is one run 'rejected'. A run still 'started' whose session is gone died
-- without finishing (kill -9, outage) and is not running: it reads as 'abandoned' even before the
-- next run of its job marks it so.
SELECT job,
       CASE WHEN status = 'started' AND NOT pgtender_session_alive(pid, started_at)
            THEN 'abandoned' ELSE status END AS status,
       started_at, finished_at
  FROM pgtender_operations
 WHERE started_at >= %(start)s
   AND started_at < %(end)s
   AND started_at <= %(now)s
   AND NOT params ? 'item'
   AND operation_id IS DISTINCT FROM %(exclude)s::uuid
 ORDER BY job, started_at
