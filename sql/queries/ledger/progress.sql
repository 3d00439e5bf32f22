-- What an open run has done so far (counts merged as its steps commit): a run that dies keeps them.
UPDATE pgtender_operations
   SET counts = counts || %(counts)s
 WHERE operation_id = %(operation_id)s
   AND status = 'started'
