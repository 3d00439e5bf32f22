-- 0003: OpenEvolve integration (seed 02_openevolve_integration): evolutionary experiments,
-- their generations and individuals, code evaluations and LLM usage/cost tracking.

CREATE TABLE evolution_experiments (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text        NOT NULL CHECK (name <> ''),
    description         text,
    problem_definition  jsonb       NOT NULL,
    objective_function  jsonb       NOT NULL,
    configuration       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    population_size     integer     NOT NULL DEFAULT 50 CHECK (population_size > 0),
    max_generations     integer     NOT NULL DEFAULT 100 CHECK (max_generations > 0),
    mutation_rate       double precision NOT NULL DEFAULT 0.1 CHECK (mutation_rate >= 0 AND mutation_rate <= 1),
    crossover_rate      double precision NOT NULL DEFAULT 0.7 CHECK (crossover_rate >= 0 AND crossover_rate <= 1),
    status              text        NOT NULL DEFAULT 'pending'
                                    CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    current_generation  integer     NOT NULL DEFAULT 0 CHECK (current_generation >= 0),
    best_fitness        double precision
                                    CHECK (best_fitness <> 'NaN' AND best_fitness <> 'Infinity' AND best_fitness <> '-Infinity'),
    total_cost_usd      numeric(14, 6) NOT NULL DEFAULT 0 CHECK (total_cost_usd >= 0 AND total_cost_usd < 'Infinity'),
    created_by          text,
    started_at          timestamptz,
    completed_at        timestamptz,
    metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT evolution_experiments_time_check
        CHECK (completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX evolution_experiments_status_idx ON evolution_experiments (status, created_at DESC);
CREATE INDEX evolution_experiments_created_at_idx ON evolution_experiments (created_at);
COMMENT ON TABLE evolution_experiments IS 'OpenEvolve evolutionary-algorithm experiments.';

CREATE TABLE evolution_generations (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    experiment_id      uuid        NOT NULL REFERENCES evolution_experiments (id) ON DELETE CASCADE,
    generation_number  integer     NOT NULL CHECK (generation_number >= 0),
    population_size    integer     CHECK (population_size >= 0),
    best_fitness       double precision CHECK (best_fitness <> 'NaN' AND best_fitness <> 'Infinity' AND best_fitness <> '-Infinity'),
    avg_fitness        double precision CHECK (avg_fitness <> 'NaN' AND avg_fitness <> 'Infinity' AND avg_fitness <> '-Infinity'),
    worst_fitness      double precision CHECK (worst_fitness <> 'NaN' AND worst_fitness <> 'Infinity' AND worst_fitness <> '-Infinity'),
    fitness_stddev     double precision CHECK (fitness_stddev >= 0 AND fitness_stddev < 'Infinity'),
    diversity_score    double precision CHECK (diversity_score >= 0 AND diversity_score <= 1),
    statistics         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT evolution_generations_experiment_number_key UNIQUE (experiment_id, generation_number),
    CONSTRAINT evolution_generations_time_check CHECK (completed_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX evolution_generations_started_at_idx ON evolution_generations (started_at);
COMMENT ON TABLE evolution_generations IS 'One generation (population snapshot) of an evolution experiment.';

CREATE TABLE evolution_individuals (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    generation_id       uuid        NOT NULL REFERENCES evolution_generations (id) ON DELETE CASCADE,
    -- Denormalised for per-experiment queries; filled from the generation by a trigger when NULL,
    -- so `INSERT (generation_id, genotype, phenotype, fitness_score)` works as in the seed.
    experiment_id       uuid        REFERENCES evolution_experiments (id) ON DELETE CASCADE,
    genotype            jsonb       NOT NULL,
    phenotype           text,
    fitness_score       double precision
                                    CHECK (fitness_score <> 'NaN' AND fitness_score <> 'Infinity' AND fitness_score <> '-Infinity'),
    fitness_components  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    parent_ids          uuid[],
    mutation_type       text,
    is_elite            boolean     NOT NULL DEFAULT false,
    rank_in_generation  integer     CHECK (rank_in_generation > 0),
    evaluated_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evolution_individuals_generation_id_idx ON evolution_individuals (generation_id, fitness_score DESC NULLS LAST);
CREATE INDEX evolution_individuals_experiment_id_idx ON evolution_individuals (experiment_id, fitness_score DESC NULLS LAST);
CREATE INDEX evolution_individuals_created_at_idx ON evolution_individuals (created_at);
COMMENT ON TABLE evolution_individuals IS 'Candidate solutions (genotype/phenotype) and their fitness.';

CREATE FUNCTION evolution_individuals_fill_experiment() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.experiment_id IS NULL THEN
        SELECT g.experiment_id INTO NEW.experiment_id
          FROM evolution_generations g
         WHERE g.id = NEW.generation_id;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION evolution_individuals_fill_experiment() IS 'Derives evolution_individuals.experiment_id from its generation when not given.';

CREATE TRIGGER evolution_individuals_fill_experiment_trg
    BEFORE INSERT OR UPDATE OF generation_id, experiment_id ON evolution_individuals
    FOR EACH ROW EXECUTE FUNCTION evolution_individuals_fill_experiment();

CREATE TABLE code_evaluations (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    individual_id           uuid        REFERENCES evolution_individuals (id) ON DELETE CASCADE,
    experiment_id           uuid        REFERENCES evolution_experiments (id) ON DELETE CASCADE,
    code_hash               text,
    language                text        NOT NULL DEFAULT 'python',
    code_snippet            text,
    evaluation_type         text        NOT NULL DEFAULT 'full'
                                        CHECK (evaluation_type IN ('full', 'correctness', 'performance', 'static_analysis', 'security', 'style')),
    passed                  boolean,
    correctness_score       double precision CHECK (correctness_score >= 0 AND correctness_score <= 1),
    performance_score       double precision CHECK (performance_score >= 0 AND performance_score <= 1),
    maintainability_score   double precision CHECK (maintainability_score >= 0 AND maintainability_score <= 1),
    execution_time_ms       double precision CHECK (execution_time_ms >= 0 AND execution_time_ms < 'Infinity'),
    memory_usage_bytes      bigint      CHECK (memory_usage_bytes >= 0),
    tests_passed            integer     CHECK (tests_passed >= 0),
    tests_total             integer     CHECK (tests_total >= 0),
    test_results            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    static_analysis         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error_message           text,
    evaluated_at            timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT code_evaluations_tests_check CHECK (tests_passed IS NULL OR tests_total IS NULL OR tests_passed <= tests_total)
);
CREATE INDEX code_evaluations_individual_id_idx ON code_evaluations (individual_id);
CREATE INDEX code_evaluations_experiment_id_idx ON code_evaluations (experiment_id, evaluated_at DESC);
CREATE INDEX code_evaluations_code_hash_idx ON code_evaluations (code_hash);
CREATE INDEX code_evaluations_evaluated_at_idx ON code_evaluations (evaluated_at);
COMMENT ON TABLE code_evaluations IS 'Quality/performance evaluation of generated code.';

CREATE TABLE llm_interactions (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    experiment_id      uuid        REFERENCES evolution_experiments (id) ON DELETE SET NULL,
    individual_id      uuid        REFERENCES evolution_individuals (id) ON DELETE SET NULL,
    model_name         text        NOT NULL CHECK (model_name <> ''),
    provider           text,
    interaction_type   text        NOT NULL DEFAULT 'completion'
                                   CHECK (interaction_type IN ('completion', 'chat', 'mutation', 'crossover', 'evaluation', 'embedding', 'other')),
    prompt_text        text,
    response_text      text,
    prompt_tokens      integer     NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens  integer     NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    total_tokens       integer     GENERATED ALWAYS AS (prompt_tokens + completion_tokens) STORED,
    cost_usd           numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0 AND cost_usd < 'Infinity'),
    latency_ms         double precision CHECK (latency_ms >= 0 AND latency_ms < 'Infinity'),
    temperature        double precision CHECK (temperature >= 0 AND temperature <= 2),
    status             text        NOT NULL DEFAULT 'success'
                                   CHECK (status IN ('success', 'error', 'timeout', 'rate_limited', 'cancelled')),
    error_message      text,
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_interactions_created_at_idx ON llm_interactions (created_at);
CREATE INDEX llm_interactions_model_created_idx ON llm_interactions (model_name, created_at);
CREATE INDEX llm_interactions_experiment_id_idx ON llm_interactions (experiment_id, created_at) WHERE experiment_id IS NOT NULL;
CREATE INDEX llm_interactions_individual_id_idx ON llm_interactions (individual_id) WHERE individual_id IS NOT NULL;
COMMENT ON TABLE llm_interactions IS 'LLM calls: tokens, cost, latency, outcome.';

-- Materialise the owner's default ACL (privileges unchanged). A REVOKE never resets an ACL to NULL,
-- so without this 0009's GRANT + REVOKE would leave these objects with an explicit ACL and a
-- rollback past 0009 would not restore this step's catalog exactly.
GRANT ALL ON TABLE evolution_experiments, evolution_generations, evolution_individuals, code_evaluations, llm_interactions TO CURRENT_USER;
