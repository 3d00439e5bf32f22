-- The run ends: its fences go (a run that lost them to another run deletes nothing).
DELETE FROM pgtender_fences
 WHERE lock_name = ANY(%(names)s::text[])
   AND operation_id = %(operation_id)s
