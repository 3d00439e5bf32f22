-- 0014: fencing tokens. A run that takes a job's advisory lock takes the lock's fence too: a new
-- token (a global counter) and its operation, in this table, one row per lock name. Every
-- transaction of the run's work first locks its fence rows FOR SHARE and compares the tokens: a
-- run whose lock was taken over (its lock session ended while its work went on) finds another
-- token and stops before writing anything; the run that takes over updates the row, so it waits
-- for (or cancels) the transaction in flight of the run before it before it touches any table.
CREATE SEQUENCE pgtender_fence_tokens;

CREATE TABLE pgtender_fences (
    lock_name     text        PRIMARY KEY,              -- the advisory lock: "partitions", "quality:2026-12-01"
    token         bigint      NOT NULL,                 -- nextval(pgtender_fence_tokens): never reused
    operation_id  uuid        NOT NULL,                 -- the run holding it (pgtender_operations)
    taken_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE pgtender_fences IS
    'pgtender fencing tokens: the run that holds each advisory lock; its work checks the token in every transaction.';
-- pgtender's own bookkeeping, like pgtender_operations: not the maintenance roles' (0009 grants
-- them every later table through default privileges).
REVOKE ALL ON TABLE pgtender_fences FROM pgtender_maintainer, pgtender_checker;
REVOKE ALL ON SEQUENCE pgtender_fence_tokens FROM pgtender_maintainer;
