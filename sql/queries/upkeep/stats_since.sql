-- Since when the statistics of this database count: their last reset, else pgtender's first run
-- here (the earliest evidence of how long the counters have been collecting).
SELECT (SELECT d.stats_reset FROM pg_stat_database AS d WHERE d.datname = current_database()),
       (SELECT min(o.started_at) FROM pgtender_operations AS o)
