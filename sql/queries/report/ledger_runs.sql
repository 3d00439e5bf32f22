-- Job runs recorded in the ledger that started in [start, end).
SELECT job, status, started_at, finished_at
  FROM pgtender_operations
 WHERE started_at >= %(start)s
   AND started_at < %(end)s
 ORDER BY job, started_at
