"""pgtender: Prefect flows that tend a PostgreSQL learning-analytics database.

Nothing here does work at import time: settings, connections and Great Expectations contexts
are created by the functions that need them.
"""

__version__ = "0.1.0"
