-- Notices of (target, source) due but not delivered yet: pages of failing checks, resolves of
-- cleared checks whose page went out.
SELECT check_name, subject, state, since, observed, limit_value, summary, next_command, failures
  FROM pgtender_alert_state
 WHERE target = %(target)s AND source = %(source)s
   AND ((state = 'failing' AND paged_at IS NULL)
     OR (state = 'ok' AND paged_at IS NOT NULL AND resolved_at IS NULL))
 ORDER BY check_name, subject
