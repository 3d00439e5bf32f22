-- A page went out (its own commit, after the receiver accepted it). Also when the check cleared
-- while the page was on its way: then the resolve becomes due, and the page does not stay open.
UPDATE pgtender_alert_state SET paged_at = %(at)s
 WHERE target = %(target)s AND check_name = %(check_name)s AND subject = %(subject)s AND paged_at IS NULL
