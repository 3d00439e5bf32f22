-- Claim the delivery of one notice for this session (held while it is sent, no transaction open):
-- false when another process is sending it now. A process that dies mid-send loses its session and
-- with it the claim: the next round sends the notice again (the receiver deduplicates on its keys).
SELECT pg_try_advisory_lock(
         hashtextextended('pgtender-alert-notice:' || %(target)s || ':' || %(check_name)s || ':' || %(subject)s, 0))
