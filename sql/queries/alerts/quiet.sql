-- (target, source) has nothing failing and nothing due: an evaluation where every check passes
-- would change nothing, so it ends here without taking the evaluation lock.
SELECT NOT EXISTS (
         SELECT 1
           FROM pgtender_alert_state
          WHERE target = %(target)s AND source = %(source)s
            AND (state = 'failing' OR (state = 'ok' AND paged_at IS NOT NULL AND resolved_at IS NULL)))
