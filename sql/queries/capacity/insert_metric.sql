INSERT INTO capacity_planning_metrics
       (metric_name, resource_type, resource_name, measured_at, value, unit, metadata,
        flow_run_id, operation_id)
VALUES (%(metric_name)s, %(resource_type)s, %(resource_name)s, %(measured_at)s, %(value)s, %(unit)s,
        %(metadata)s, %(flow_run_id)s, %(operation_id)s)
ON CONFLICT (metric_name, resource_name, measured_at) DO UPDATE
   SET value = EXCLUDED.value,
       unit = EXCLUDED.unit,
       metadata = EXCLUDED.metadata,
       flow_run_id = EXCLUDED.flow_run_id,
       operation_id = EXCLUDED.operation_id
