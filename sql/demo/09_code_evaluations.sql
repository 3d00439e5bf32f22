INSERT INTO code_evaluations (individual_id, experiment_id, code_hash, language, code_snippet, evaluation_type,
                              passed, correctness_score, performance_score, maintainability_score,
                              execution_time_ms, memory_usage_bytes, tests_passed, tests_total, test_results,
                              static_analysis, error_message, evaluated_at, created_at)
SELECT i.id, i.experiment_id, md5(i.phenotype), 'python', i.phenotype, 'full',
       i.fitness_score >= 0.5,
       round(least(1, i.fitness_score + 0.05)::numeric, 4)::double precision,
       i.fitness_score,
       round((0.5 + random() * 0.5)::numeric, 4)::double precision,
       round((5 + (1 - i.fitness_score) * 500 * random())::numeric, 3)::double precision,
       (1000000 + random() * 50000000)::bigint,
       floor(20 * i.fitness_score)::int, 20,
       jsonb_build_object('suite', 'sorting_benchmark'),
       jsonb_build_object('warnings', floor(random() * 5)::int),
       CASE WHEN i.fitness_score < 0.2 THEN 'AssertionError: output not sorted' END,
       i.evaluated_at, i.evaluated_at
  FROM evolution_individuals i
 ORDER BY i.created_at, i.rank_in_generation, i.id
