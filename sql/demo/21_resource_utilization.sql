-- 6 resources sampled hourly (144 rows a day); utilization 20..75 percent, except the disk's 3
-- most recent samples: 91, 93.5, 96 percent (alert: > 85 percent).
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days),
     r AS (SELECT * FROM (VALUES
            ('cpu', 'db-1/cpu', 16.0::double precision, 'cores'),
            ('memory', 'db-1/memory', 64.0, 'GiB'),
            ('disk', 'db-1/pgdata', 2000.0, 'GiB'),
            ('connections', 'db-1/max_connections', 200.0, 'connections'),
            ('io', 'db-1/nvme0', 3000.0, 'MiB/s'),
            ('network', 'db-1/eth0', 10000.0, 'Mbit/s')) AS t(resource_type, resource_name, capacity, unit))
INSERT INTO resource_utilization (measured_at, resource_type, resource_name, host, utilization_pct, capacity,
                                  used, unit, metadata)
SELECT p.ts - make_interval(hours => h), r.resource_type, r.resource_name, 'db-1',
       u.pct, r.capacity, round((r.capacity * u.pct / 100)::numeric, 3)::double precision, r.unit,
       CASE WHEN r.resource_type = 'disk' AND h < 3 THEN jsonb_build_object('anomaly', 'disk_nearly_full')
            ELSE '{}'::jsonb END
  FROM p
 CROSS JOIN generate_series(0, p.days * 24 - 1) AS h
 CROSS JOIN r
 CROSS JOIN LATERAL (SELECT CASE WHEN r.resource_type = 'disk' AND h < 3 THEN 96.0 - h * 2.5
                                 ELSE round((20 + random() * 55)::numeric, 2)::double precision END AS pct) u
 ORDER BY h, r.resource_type
