-- One re-delivered git operation: same (repository, commit_sha, operation), new id; no UNIQUE forbids it.
INSERT INTO git_operation_learning_events (repository, branch, operation, commit_sha, author, message,
                                           files_changed, lines_added, lines_deleted, duration_ms, success,
                                           metadata, occurred_at, created_at)
SELECT g.repository, g.branch, g.operation, g.commit_sha, g.author, g.message, g.files_changed, g.lines_added,
       g.lines_deleted, g.duration_ms, g.success, jsonb_build_object('anomaly', 'duplicate_delivery'),
       g.occurred_at, g.created_at + interval '30 seconds'
  FROM git_operation_learning_events g
 ORDER BY g.occurred_at DESC, g.id
 LIMIT 1
