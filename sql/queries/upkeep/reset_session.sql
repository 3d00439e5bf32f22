-- Back to the session's defaults after a rebuild (the connection's own startup options).
RESET lock_timeout;
RESET statement_timeout;
RESET max_parallel_maintenance_workers;
