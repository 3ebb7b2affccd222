-- mad.deployment_report (017) calls mad.reference_alias, a helper granted to nobody. A view reads its tables with its
-- owner's rights, but the functions it calls run as its reader, so every mad_admin login was refused the report
-- ("permission denied for function reference_alias"); the tests read it as the superuser and never noticed. The
-- helper only splits a reference into its alias (no table, no state): its readers may call it.
-- Hostile/ViewFunctionTests now reads every mad view as every role granted it.
GRANT EXECUTE ON FUNCTION mad.reference_alias(text) TO mad_admin;
