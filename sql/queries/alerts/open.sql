-- Every check failing now, oldest first (pgtender alerts status).
SELECT target, check_name, subject, source, since, last_seen_at, paged_at, failures, summary, next_command
  FROM pgtender_alert_state
 WHERE state = 'failing'
 ORDER BY since, target, check_name, subject
