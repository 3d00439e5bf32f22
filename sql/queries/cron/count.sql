SELECT count(*) FROM cron.job
