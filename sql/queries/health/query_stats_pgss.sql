-- Current mean execution time of the busiest statements of this database (pg_stat_statements).
SELECT s.queryid::text, s.calls, s.mean_exec_time
  FROM pg_stat_statements s
  JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = current_database() AND s.calls > 0
 ORDER BY s.total_exec_time DESC
 LIMIT 50
