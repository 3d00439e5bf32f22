DROP TABLE pgtender_fences;
DROP SEQUENCE pgtender_fence_tokens;
