-- Is the table partitioned, and does a partition named by the convention <parent>_pYYYYMMDD
-- (daily or monthly lower bound) exist for the day?
SELECT p.relkind = 'p',
       (SELECT min(c.relname::text)
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = p.oid
           AND c.relname::text = ANY (%(names)s::text[]))
  FROM pg_class p
 WHERE p.oid = to_regclass(%(table)s)
