DROP TABLE data_quality_checks;
DROP TABLE user_session_learning_events;
DROP TABLE git_operation_learning_events;
