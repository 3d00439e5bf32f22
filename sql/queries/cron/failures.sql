-- Failed runs since %(since)s of the pg_cron jobs that remain scheduled for one database.
SELECT j.jobid, j.jobname, j.command, d.status, d.return_message, d.start_time, d.end_time
  FROM cron.job_run_details AS d
  JOIN cron.job AS j ON j.jobid = d.jobid
 WHERE d.status = 'failed'
   AND d.start_time >= %(since)s
   AND j.database = %(database)s
 ORDER BY d.start_time DESC
 LIMIT %(limit)s
