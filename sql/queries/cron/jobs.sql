-- pg_cron's jobs with their run history since %(since)s (counts, last run, last failure).
SELECT j.jobid, j.jobname, j.schedule, j.command, j.database, j.username, j.active,
       count(d.runid) AS runs,
       count(d.runid) FILTER (WHERE d.status = 'failed') AS failures,
       max(d.start_time) AS last_run_at,
       (array_agg(d.status ORDER BY d.start_time DESC) FILTER (WHERE d.runid IS NOT NULL))[1] AS last_status,
       max(d.start_time) FILTER (WHERE d.status = 'failed') AS last_failure_at,
       (array_agg(d.return_message ORDER BY d.start_time DESC) FILTER (WHERE d.status = 'failed'))[1]
           AS last_failure_message
  FROM cron.job AS j
  LEFT JOIN cron.job_run_details AS d ON d.jobid = j.jobid AND d.start_time >= %(since)s
 GROUP BY j.jobid
 ORDER BY j.jobid
