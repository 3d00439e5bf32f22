-- Set a run-time parameter for the current transaction only (SET LOCAL with a parameter value).
SELECT set_config(%(name)s, %(value)s, true)
