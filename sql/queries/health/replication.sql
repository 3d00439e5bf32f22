SELECT pg_is_in_recovery() AS in_recovery,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS replay_age,
       (SELECT count(*) FROM pg_stat_replication) AS replicas,
       (SELECT max(extract(epoch FROM coalesce(replay_lag, '0'::interval)))::float8
          FROM pg_stat_replication) AS max_replay_lag,
       (SELECT string_agg(coalesce(application_name, client_addr::text, '?'), ',' ORDER BY application_name)
          FROM pg_stat_replication
         WHERE extract(epoch FROM coalesce(replay_lag, '0'::interval)) > %(max_lag)s) AS lagging
