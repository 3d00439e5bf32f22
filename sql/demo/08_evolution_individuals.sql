-- experiment_id is filled by the trigger from the generation, as for the seed's example INSERT.
INSERT INTO evolution_individuals (generation_id, genotype, phenotype, fitness_score, fitness_components,
                                   mutation_type, is_elite, rank_in_generation, evaluated_at, created_at, updated_at)
SELECT g.id,
       jsonb_build_object('params', jsonb_build_object('algorithm', (ARRAY['quicksort', 'timsort', 'radix', 'heapsort'])[1 + mod(i, 4)],
                                                       'threshold', 8 + mod(i * 7, 40))),
       'def candidate_' || g.generation_number || '_' || i || '(arr): ...',
       s.fitness,
       jsonb_build_object('execution_time', round((1 - s.fitness)::numeric, 3), 'memory_usage', round(random()::numeric, 3)),
       (ARRAY['point', 'llm_rewrite', 'crossover', 'none'])[1 + mod(i, 4)],
       i <= 3, i, g.completed_at, g.started_at + make_interval(secs => i * 20), g.completed_at
  FROM evolution_generations g
 CROSS JOIN generate_series(1, 25) AS i
 CROSS JOIN LATERAL (SELECT round(least(0.99, greatest(0.01,
                       0.3 + 0.6 * g.generation_number / 19.0 - 0.02 * i + (random() - 0.5) * 0.1))::numeric, 4)::double precision
                     AS fitness) s
 ORDER BY g.started_at, g.experiment_id, i
