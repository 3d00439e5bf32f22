-- Last success of each job, and when pgtender first ran at all here (its 'install' time).
SELECT j.job,
       (SELECT max(o.finished_at) FROM pgtender_operations o
         WHERE o.job = j.job AND o.status = 'completed') AS last_success,
       (SELECT max(o.started_at) FROM pgtender_operations o WHERE o.job = j.job) AS last_start,
       (SELECT min(o.started_at) FROM pgtender_operations o) AS first_operation
  FROM unnest(%(jobs)s::text[]) AS j(job)
 ORDER BY j.job
