-- Fitness statistics are left NULL on purpose: migrate_existing_data() derives them.
INSERT INTO evolution_generations (experiment_id, generation_number, started_at, completed_at, diversity_score,
                                   statistics, created_at)
SELECT x.id, g, x.started_at + make_interval(mins => g * 30), x.started_at + make_interval(mins => g * 30 + 25),
       round((0.9 - g * 0.03)::numeric, 3)::double precision,
       jsonb_build_object('mutations', 20, 'crossovers', 15),
       x.started_at + make_interval(mins => g * 30)
  FROM evolution_experiments x
 CROSS JOIN generate_series(0, 19) AS g
 ORDER BY x.name, g
