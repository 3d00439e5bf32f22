-- Is there a schema of this name?
SELECT to_regnamespace(quote_ident(%(schema)s)) IS NOT NULL
