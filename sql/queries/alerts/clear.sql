-- A failing check passes again: the spell ends; a resolve is due when its page went out.
UPDATE pgtender_alert_state
   SET state = 'ok', since = %(now)s, last_seen_at = %(now)s, resolved_at = NULL,
       observed = coalesce(%(observed)s, observed), summary = coalesce(%(summary)s, summary)
 WHERE target = %(target)s AND check_name = %(check_name)s AND subject = %(subject)s AND state = 'failing'
RETURNING paged_at, observed, limit_value, summary, next_command
