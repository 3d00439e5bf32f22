-- The sequence behind a serial or identity column (NULL for any other column).
SELECT pg_get_serial_sequence(%(table)s, %(column)s)
