UPDATE pgtender_alert_state SET resolved_at = %(at)s
 WHERE target = %(target)s AND check_name = %(check_name)s AND subject = %(subject)s AND state = 'ok'
