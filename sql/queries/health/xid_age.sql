SELECT age(d.datfrozenxid)::bigint AS database_age,
       (SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'm', 't')
         ORDER BY age(c.relfrozenxid) DESC LIMIT 1) AS oldest_relation,
       (SELECT max(age(c.relfrozenxid)) FROM pg_class c WHERE c.relkind IN ('r', 'm', 't'))::bigint AS relation_age
  FROM pg_database d
 WHERE d.datname = current_database()
