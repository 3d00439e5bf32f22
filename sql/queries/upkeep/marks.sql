-- What pgtender recorded when it last analyzed each parent (upkeep's 'upkeep.parent_analyzed'
-- measurement: its partitions' cumulative changes then, and which partitions it had).
SELECT DISTINCT ON (resource_name) resource_name, measured_at, value, metadata
  FROM capacity_planning_metrics
 WHERE metric_name = 'upkeep.parent_analyzed'
   AND resource_name = ANY(%(names)s::text[])
 ORDER BY resource_name, measured_at DESC
