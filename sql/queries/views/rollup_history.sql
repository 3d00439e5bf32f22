-- Roll up every day learning_events holds (after a bulk load such as the demo data): the view
-- mv_daily_learning_events then covers the whole history, as the views job only recomputes the
-- trailing days. min/max come from the occurred_at index.
SELECT refresh_learning_events_daily((min(occurred_at) AT TIME ZONE 'UTC')::date,
                                     (max(occurred_at) AT TIME ZONE 'UTC')::date)
  FROM learning_events
HAVING min(occurred_at) IS NOT NULL
