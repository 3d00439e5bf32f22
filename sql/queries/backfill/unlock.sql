-- Release what try_locks.sql acquired (session-level advisory locks), in one round trip.
SELECT CASE WHEN %(job_lock)s THEN pg_advisory_unlock(hashtext('pgtender.job'), hashtext(%(job)s)) END,
       CASE WHEN %(day_lock)s THEN pg_advisory_unlock(hashtext('pgtender.job'), hashtext(%(job_day)s)) END
