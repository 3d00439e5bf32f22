-- One notice, read again once its claim is held: still due (another process may have delivered it
-- between the listing and the claim)?
SELECT source, check_name, subject, state, since, observed, limit_value, summary, next_command, failures
  FROM pgtender_alert_state
 WHERE target = %(target)s AND check_name = %(check_name)s AND subject = %(subject)s
   AND ((state = 'failing' AND paged_at IS NULL)
     OR (state = 'ok' AND paged_at IS NOT NULL AND resolved_at IS NULL))
