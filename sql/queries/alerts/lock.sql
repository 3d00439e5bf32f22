-- One evaluation of (target, source) at a time, until the transaction ends: its pages go out once.
SELECT pg_advisory_xact_lock(hashtextextended('pgtender-alerts:' || %(target)s || ':' || %(source)s, 0))
