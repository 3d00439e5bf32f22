-- Take the fence of each advisory lock the run now holds: a new token (never reused) and the run's
-- operation. Updating a row waits for the transactions that locked it FOR SHARE (check.sql): the
-- transactions still in flight of the run that held the lock before (under lock_timeout).
INSERT INTO pgtender_fences AS f (lock_name, token, operation_id)
SELECT n, nextval('pgtender_fence_tokens'), %(operation_id)s
  FROM unnest(%(names)s::text[]) WITH ORDINALITY AS t(n, i)
 ORDER BY i
    ON CONFLICT (lock_name) DO UPDATE
   SET token = EXCLUDED.token,
       operation_id = EXCLUDED.operation_id,
       taken_at = clock_timestamp()
RETURNING f.lock_name, f.token
