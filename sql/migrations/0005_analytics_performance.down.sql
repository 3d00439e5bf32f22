DROP TABLE capacity_planning_metrics;
DROP TABLE resource_utilization;
DROP TABLE query_performance_logs;
-- Dropping a partitioned table drops all of its partitions (whatever the partitions job added).
DROP TABLE system_performance_metrics;
DROP TABLE learning_events;
