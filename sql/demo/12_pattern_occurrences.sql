-- 300 occurrences a day; pattern chosen round-robin so every one of the 13 patterns occurs.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days),
     pat AS (SELECT array_agg(x.id ORDER BY (x.metadata ->> 'ordinal')::int, x.id) AS ids FROM identified_patterns x)
INSERT INTO pattern_occurrences (pattern_id, source_type, source_id, location_data, context, confidence,
                                 detected_at, resolved_at, created_at)
SELECT pat.ids[1 + mod(n, cardinality(pat.ids))],
       'code_file', 'file' || (1 + mod(n * 37, 997)),
       jsonb_build_object('file', 'src/module_' || (1 + mod(n * 37, 997)) || '.py',
                          'line_start', 1 + mod(n * 13, 400), 'line_end', 1 + mod(n * 13, 400) + mod(n, 120)),
       jsonb_build_object('commit', substr(md5(n::text), 1, 12)),
       round((0.5 + random() * 0.5)::numeric, 4)::double precision,
       t.detected_at,
       CASE WHEN mod(n, 5) = 0 THEN t.detected_at + interval '2 days' END,
       t.detected_at
  FROM p
 CROSS JOIN pat
 CROSS JOIN generate_series(1, p.days * 300) AS n
 CROSS JOIN LATERAL (SELECT p.ts - make_interval(secs => (n - 1) * 86400.0 / 300 + random() * 200) AS detected_at) t
 ORDER BY n
