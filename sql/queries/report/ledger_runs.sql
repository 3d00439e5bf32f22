-- Job runs recorded in the ledger that started in [start, end). A run still 'started' whose
-- session is gone died without finishing (kill -9, outage) and is not running: it reads as
-- 'abandoned' even before the next run of its job marks it so.
SELECT job,
       CASE WHEN status = 'started' AND NOT pgtender_session_alive(pid, started_at)
            THEN 'abandoned' ELSE status END AS status,
       started_at, finished_at
  FROM pgtender_operations
 WHERE started_at >= %(start)s
   AND started_at < %(end)s
 ORDER BY job, started_at
