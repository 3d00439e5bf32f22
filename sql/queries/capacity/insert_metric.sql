-- Every measurement of one instant in one statement: the rows as one JSON array of
-- {metric_name, resource_type, resource_name, value, unit, metadata}.
-- (executemany sent a statement a row: most of a no-op partitions pass's time went to it.)
-- The caller passes each (metric_name, resource_name) once; a repeated one would make ON CONFLICT
-- update the same row twice in one command, which PostgreSQL refuses.
INSERT INTO capacity_planning_metrics
       (metric_name, resource_type, resource_name, measured_at, value, unit, metadata,
        flow_run_id, operation_id)
SELECT m.metric_name, m.resource_type, m.resource_name, %(measured_at)s, m.value, m.unit,
       coalesce(m.metadata, '{}'), %(flow_run_id)s, %(operation_id)s
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS m(metric_name text, resource_type text, resource_name text, value float8, unit text,
            metadata jsonb)
ON CONFLICT (metric_name, resource_name, measured_at) DO UPDATE
   SET value = EXCLUDED.value,
       unit = EXCLUDED.unit,
       metadata = EXCLUDED.metadata,
       flow_run_id = EXCLUDED.flow_run_id,
       operation_id = EXCLUDED.operation_id
