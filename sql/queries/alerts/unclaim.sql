SELECT pg_advisory_unlock(
         hashtextextended('pgtender-alert-notice:' || %(target)s || ':' || %(check_name)s || ':' || %(subject)s, 0))
