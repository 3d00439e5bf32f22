INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end, status,
                                 observed_value, expected, threshold, score, unexpected_count,
                                 unexpected_percent, sample, details, flow_run_id, is_current)
VALUES (%(check_name)s, %(suite)s, %(target)s, %(window_start)s, %(window_end)s, %(status)s,
        %(observed_value)s, %(expected)s, %(threshold)s, %(score)s, %(unexpected_count)s,
        %(unexpected_percent)s, %(sample)s, %(details)s, %(flow_run_id)s, true)
