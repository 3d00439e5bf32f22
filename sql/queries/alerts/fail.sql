-- A check is failing: a new spell starts (since, failures = 1, no page yet) unless one is running.
INSERT INTO pgtender_alert_state AS s
       (target, check_name, subject, source, state, since, last_seen_at, observed, limit_value,
        summary, next_command, failures)
VALUES (%(target)s, %(check_name)s, %(subject)s, %(source)s, 'failing', %(now)s, %(now)s, %(observed)s,
        %(limit)s, %(summary)s, %(next_command)s, 1)
ON CONFLICT (target, check_name, subject) DO UPDATE SET
       source       = EXCLUDED.source,
       since        = CASE WHEN s.state = 'failing' THEN s.since ELSE EXCLUDED.since END,
       paged_at     = CASE WHEN s.state = 'failing' THEN s.paged_at END,
       resolved_at  = NULL,
       failures     = CASE WHEN s.state = 'failing' THEN s.failures + 1 ELSE 1 END,
       state        = 'failing',
       last_seen_at = EXCLUDED.last_seen_at,
       observed     = EXCLUDED.observed,
       limit_value  = EXCLUDED.limit_value,
       summary      = EXCLUDED.summary,
       next_command = EXCLUDED.next_command
RETURNING since, paged_at, failures
