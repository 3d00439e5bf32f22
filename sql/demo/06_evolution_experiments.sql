WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days)
INSERT INTO evolution_experiments (name, description, problem_definition, objective_function, configuration,
                                   population_size, max_generations, mutation_rate, crossover_rate, status,
                                   current_generation, total_cost_usd, created_by, started_at, completed_at,
                                   created_at, updated_at)
SELECT v.name, v.description, v.problem::jsonb, v.objective::jsonb,
       jsonb_build_object('llm', v.llm, 'islands', 4),
       25, 20, v.mutation, 0.7, v.status, 19, 0, 'demo-data',
       p.ts - make_interval(days => v.started_days_ago),
       CASE WHEN v.status = 'completed' THEN p.ts - make_interval(days => v.started_days_ago - 1) END,
       p.ts - make_interval(days => v.started_days_ago), p.ts - make_interval(days => v.started_days_ago)
  FROM p
 CROSS JOIN (VALUES
    ('optimize_sorting', 'Evolve a faster sorting routine',
     '{"problem": "optimize sorting algorithm"}', '{"metrics": ["execution_time", "memory_usage"]}',
     'gpt-4o-mini', 0.10::double precision, 'completed', 10),
    ('optimize_query_planner_hints', 'Evolve planner hints for slow dashboard queries',
     '{"problem": "reduce p95 of dashboard queries"}', '{"metrics": ["p95_ms"]}',
     'claude-3-5-sonnet', 0.15, 'running', 3),
    ('minimize_memory_footprint', 'Evolve a compact in-memory index',
     '{"problem": "index with low memory"}', '{"metrics": ["memory_usage", "lookup_time"]}',
     'gpt-4o', 0.05, 'completed', 7)
 ) AS v(name, description, problem, objective, llm, mutation, status, started_days_ago)
