-- Last success of each job, and when pgtender first ran at all here (its 'install' time).
-- A run that did its work and found problems (status 'problems') counts as a success here: the
-- watchdog asks whether the job still runs; what it found is alerted by its own checks (health
-- probes, quality suites).
SELECT j.job,
       (SELECT max(o.finished_at) FROM pgtender_operations o
         WHERE o.job = j.job AND o.status IN ('completed', 'problems')) AS last_success,
       (SELECT max(o.started_at) FROM pgtender_operations o WHERE o.job = j.job) AS last_start,
       (SELECT min(o.started_at) FROM pgtender_operations o WHERE o.status <> 'rejected') AS first_operation
  FROM unnest(%(jobs)s::text[]) AS j(job)
 ORDER BY j.job
