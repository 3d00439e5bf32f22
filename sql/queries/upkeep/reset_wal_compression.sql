-- Back to the session's default WAL compression after a rebuild that set its own (only then: a
-- role that could not SET it may not RESET it either).
RESET wal_compression;
