-- What a new partition repeats from its parent, one row per parent: the explicit privileges as
-- [grantee (NULL = PUBLIC), privilege, grantable] (the owner's own are implicit) and the stored
-- columns in order (generated ones are computed, never copied). Catalog only: no lock on the table.
SELECT c.oid::bigint                                               AS oid,
       coalesce((SELECT json_agg(json_build_array(
                          CASE WHEN acl.grantee = 0 THEN NULL ELSE pg_get_userbyid(acl.grantee)::text END,
                          acl.privilege_type, acl.is_grantable))
                   FROM aclexplode(c.relacl) AS acl
                  WHERE acl.grantee <> c.relowner), '[]'::json)  AS acl,
       ARRAY(SELECT a.attname::text
               FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              ORDER BY a.attnum)                                   AS columns
  FROM pg_class c
 WHERE c.oid = ANY(%(oids)s::oid[])
