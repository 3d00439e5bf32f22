-- One mutation call per evolved individual, plus 40 chat calls a day outside experiments.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days),
     calls AS (
        SELECT i.experiment_id, i.id AS individual_id, coalesce(x.configuration ->> 'llm', 'gpt-4o-mini') AS model_name,
               'mutation' AS interaction_type, i.created_at - interval '5 seconds' AS created_at,
               row_number() OVER (ORDER BY i.created_at, i.rank_in_generation, i.id) AS n
          FROM evolution_individuals i
          JOIN evolution_experiments x ON x.id = i.experiment_id
        UNION ALL
        SELECT NULL, NULL, (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet'])[1 + mod(n, 3)],
               'chat', p.ts - make_interval(secs => (n * 86400.0 / 40) - 1), 100000 + n
          FROM p CROSS JOIN generate_series(1, p.days * 40) AS n)
INSERT INTO llm_interactions (experiment_id, individual_id, model_name, provider, interaction_type, prompt_text,
                              response_text, prompt_tokens, completion_tokens, cost_usd, latency_ms, temperature,
                              status, error_message, metadata, created_at)
SELECT c.experiment_id, c.individual_id, c.model_name,
       CASE WHEN c.model_name = 'claude-3-5-sonnet' THEN 'anthropic' ELSE 'openai' END,
       c.interaction_type, 'Improve the following function ...', CASE WHEN mod(c.n, 50) = 0 THEN NULL ELSE 'def improved(...): ...' END,
       t.prompt_tokens, t.completion_tokens,
       round((t.prompt_tokens * 0.0000025 + t.completion_tokens * 0.00001)::numeric, 6),
       round((300 + random() * 4000)::numeric, 1)::double precision,
       0.7,
       CASE WHEN mod(c.n, 50) = 0 THEN 'error' WHEN mod(c.n, 97) = 0 THEN 'timeout' ELSE 'success' END,
       CASE WHEN mod(c.n, 50) = 0 THEN 'HTTP 500 from provider' END,
       '{}'::jsonb, c.created_at
  FROM calls c
 CROSS JOIN LATERAL (SELECT 400 + floor(random() * 1600)::int AS prompt_tokens,
                            CASE WHEN mod(c.n, 50) = 0 THEN 0 ELSE 100 + floor(random() * 900)::int END AS completion_tokens) t
 ORDER BY c.n
