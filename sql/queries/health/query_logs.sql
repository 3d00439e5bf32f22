-- Per query fingerprint over the lookback window: mean execution time, and its baseline: the
-- logged baseline_ms when present, else the median of the fingerprint's latest (up to 100) samples
-- over the days before the window (index: query_fingerprint, logged_at DESC). At most the 200
-- fingerprints with the most total time in the window are compared, so the probe stays cheap.
WITH recent AS (
    SELECT query_fingerprint AS fp,
           sum(execution_ms * calls) / sum(calls) AS mean_ms,
           sum(calls) AS calls,
           avg(baseline_ms) AS logged_baseline
      FROM query_performance_logs
     WHERE logged_at > %(now)s - %(lookback)s AND logged_at <= %(now)s
     GROUP BY query_fingerprint
     ORDER BY sum(execution_ms * calls) DESC, query_fingerprint
     LIMIT 200
)
SELECT r.fp, r.mean_ms, r.calls, coalesce(r.logged_baseline, h.median_ms) AS baseline_ms,
       CASE WHEN r.logged_baseline IS NOT NULL THEN 'baseline_ms' ELSE 'history' END AS baseline_source
  FROM recent r
  LEFT JOIN LATERAL (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.execution_ms) AS median_ms
          FROM (SELECT q.execution_ms
                  FROM query_performance_logs q
                 WHERE r.logged_baseline IS NULL
                   AND q.query_fingerprint = r.fp
                   AND q.logged_at > %(now)s - %(lookback)s - %(baseline)s
                   AND q.logged_at <= %(now)s - %(lookback)s
                 ORDER BY q.logged_at DESC
                 LIMIT 100) s
       ) h ON true
 ORDER BY r.fp
