DROP TABLE llm_interactions;
DROP TABLE code_evaluations;
DROP TRIGGER evolution_individuals_fill_experiment_trg ON evolution_individuals;
DROP TABLE evolution_individuals;
DROP FUNCTION evolution_individuals_fill_experiment();
DROP TABLE evolution_generations;
DROP TABLE evolution_experiments;
