INSERT INTO data_quality_checks
       (check_name, suite, target, window_start, window_end, status, observed_value, expected,
        threshold, details, flow_run_id, is_current)
VALUES (%(check_name)s, 'health', %(target)s, %(window_start)s, %(window_end)s, %(status)s,
        %(observed)s, %(expected)s, %(threshold)s, %(details)s, %(flow_run_id)s, true)
