-- One round trip for both locks of a backfill item: the job's own lock (the key flows/locks.py
-- job_lock uses, i.e. the lock the job's scheduled flow takes) and a (job, day) lock.
SELECT pg_try_advisory_lock(hashtext('pgtender.job'), hashtext(%(job)s)) AS job_lock,
       pg_try_advisory_lock(hashtext('pgtender.job'), hashtext(%(job_day)s)) AS day_lock
