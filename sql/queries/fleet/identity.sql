-- Which database this is, whatever name or address reached it: the cluster's system identifier
-- (pg_control_system: fixed at initdb, the same on its streaming replicas) and the database's oid;
-- and whether this server is a replica (a replica writes nothing: it never conflicts).
SELECT (SELECT system_identifier FROM pg_control_system())::text,
       (SELECT oid FROM pg_database WHERE datname = current_database())::bigint,
       pg_is_in_recovery()
