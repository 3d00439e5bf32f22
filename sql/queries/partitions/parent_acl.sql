-- The parent's explicit privileges, to repeat on a new partition (grantee 0 = PUBLIC).
SELECT CASE WHEN acl.grantee = 0 THEN NULL ELSE pg_get_userbyid(acl.grantee)::text END AS grantee,
       acl.privilege_type,
       acl.is_grantable
  FROM pg_class c, LATERAL aclexplode(c.relacl) AS acl
 WHERE c.oid = %(oid)s::oid
   AND acl.grantee <> c.relowner
 ORDER BY 1 NULLS FIRST, 2
