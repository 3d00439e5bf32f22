-- Every check row of one run in one statement: the rows as one JSON array.
INSERT INTO data_quality_checks
       (check_name, suite, target, window_start, window_end, status, observed_value, expected,
        threshold, details, flow_run_id, is_current)
SELECT r.check_name, 'upkeep', r.target, %(window_start)s, %(window_end)s, r.status, r.observed,
       r.expected, r.threshold, coalesce(r.details, '{}'), %(flow_run_id)s, true
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS r(check_name text, target text, status text, observed jsonb, expected jsonb,
            threshold float8, details jsonb)
