-- The runs that held these fences before (the committed rows: no lock taken, nothing waited on).
SELECT DISTINCT operation_id
  FROM pgtender_fences
 WHERE lock_name = ANY(%(names)s::text[])
   AND operation_id <> %(operation_id)s
