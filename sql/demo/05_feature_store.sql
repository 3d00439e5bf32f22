WITH p AS (SELECT %(now)s::timestamptz AS ts)
INSERT INTO feature_store (feature_group, feature_name, entity_type, entity_id, feature_value, value_type,
                           version, source, computed_at, valid_from, metadata, created_at, updated_at)
SELECT f.grp, f.fname, 'code_file', 'src/module_' || e || '.py',
       CASE f.vtype
            WHEN 'numeric' THEN to_jsonb(round((random() * f.scale)::numeric, 3))
            WHEN 'boolean' THEN to_jsonb(random() < 0.3)
            ELSE to_jsonb((ARRAY['python', 'sql', 'rust'])[1 + floor(random() * 3)::int]) END,
       f.vtype, 1, 'feature_pipeline',
       p.ts - make_interval(hours => e), p.ts - make_interval(hours => e), '{}'::jsonb,
       p.ts - make_interval(hours => e), p.ts - make_interval(hours => e)
  FROM p
 CROSS JOIN generate_series(1, 50) AS e
 CROSS JOIN (VALUES ('code_metrics', 'lines_of_code', 'numeric', 2000.0),
                    ('code_metrics', 'cyclomatic_complexity', 'numeric', 40.0),
                    ('code_metrics', 'comment_ratio', 'numeric', 1.0),
                    ('history', 'churn_30d', 'numeric', 500.0),
                    ('history', 'distinct_authors_90d', 'numeric', 12.0),
                    ('history', 'has_recent_bugfix', 'boolean', 1.0),
                    ('ownership', 'primary_language', 'categorical', 1.0),
                    ('tests', 'coverage_ratio', 'numeric', 1.0)) AS f(grp, fname, vtype, scale)
 ORDER BY e, f.grp, f.fname
