-- Notices of a target due but not delivered yet (its outbox), of one source or of all (%(source)s
-- NULL): pages of failing checks, resolves of cleared checks whose page went out.
SELECT source, check_name, subject, state, since, observed, limit_value, summary, next_command, failures
  FROM pgtender_alert_state
 WHERE target = %(target)s AND (%(source)s::text IS NULL OR source = %(source)s::text)
   AND ((state = 'failing' AND paged_at IS NULL)
     OR (state = 'ok' AND paged_at IS NOT NULL AND resolved_at IS NULL))
 ORDER BY source, check_name, subject
