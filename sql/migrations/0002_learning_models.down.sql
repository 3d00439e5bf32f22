DROP TABLE feature_store;
DROP TABLE model_evaluations;
DROP TABLE model_training_sessions;
DROP TABLE training_datasets;
DROP TABLE ml_models;
