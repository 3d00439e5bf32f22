-- The checks of (target, source) that are failing now.
SELECT check_name, subject
  FROM pgtender_alert_state
 WHERE target = %(target)s AND source = %(source)s AND state = 'failing'
