INSERT INTO model_training_sessions (model_id, dataset_id, status, total_epochs, completed_epochs, best_epoch,
                                     training_loss, validation_loss, learning_curve, hyperparameters,
                                     compute_resources, compute_cost_usd, error_message,
                                     started_at, completed_at, created_at, updated_at)
SELECT m.id,
       (SELECT d.id FROM training_datasets d
         ORDER BY d.name LIMIT 1 OFFSET mod(m.rn + k, 4)),
       CASE WHEN k = 1 THEN 'completed' WHEN mod(m.rn, 3) = 0 THEN 'failed' ELSE 'completed' END,
       50,
       CASE WHEN k = 2 AND mod(m.rn, 3) = 0 THEN 17 ELSE 50 END,
       CASE WHEN k = 2 AND mod(m.rn, 3) = 0 THEN NULL ELSE 30 + floor(random() * 20)::int END,
       round((0.05 + random() * 0.2)::numeric, 4)::double precision,
       round((0.08 + random() * 0.25)::numeric, 4)::double precision,
       jsonb_build_array(0.9, 0.5, 0.3, 0.2),
       m.hyperparameters,
       jsonb_build_object('gpus', 1 + mod(m.rn, 4), 'instance', 'g5.xlarge'),
       round((5 + random() * 120)::numeric, 4),
       CASE WHEN k = 2 AND mod(m.rn, 3) = 0 THEN 'CUDA out of memory at epoch 17' END,
       p.ts - make_interval(days => p.days + 6 - k * 2),
       p.ts - make_interval(days => p.days + 6 - k * 2) + make_interval(hours => 3 + m.rn),
       p.ts - make_interval(days => p.days + 6 - k * 2),
       p.ts - make_interval(days => p.days + 6 - k * 2) + make_interval(hours => 3 + m.rn)
  FROM (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days) p
 CROSS JOIN (SELECT x.*, row_number() OVER (ORDER BY x.name)::int AS rn FROM ml_models x) m
 CROSS JOIN generate_series(1, 2) AS k
 ORDER BY m.rn, k
