-- The run's own session still answers: its advisory locks live exactly as long as it does.
SELECT 1
