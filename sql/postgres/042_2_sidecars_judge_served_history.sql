-- The outcome gate (027_3) and the outcome floors' gauges (042_1) run as mad's owner, inside definer functions that
-- a sidecar calls (mad.advance_deployments, mad.outcome_gauges), and read the served predictions through
-- mad.served_predictions. That function lets through only a caller who may SELECT mad_out.<name>, judged by
-- mad.caller_role(): there, the sidecar's login. A login that holds only mad_sidecar has SELECT only on tables it has
-- refreshed or watched, so the gate failed ("could not read the outcomes", and the canary rolled back) and a floor's
-- gauges read nothing, wherever the sidecar was not a superuser; every test had run it as one.
--
-- A member of mad_sidecar now passes the check. It gains nothing by it: served_predictions is not granted to
-- mad_sidecar (only mad_admin and mad_user may call it), so the clause takes effect only inside mad's own definer
-- functions, and a sidecar writes every mad_out table anyway. The body is otherwise 029_2's.
CREATE OR REPLACE FUNCTION mad.served_predictions(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
  out_table regclass := pg_catalog.to_regclass(format('mad_out.%I', binding.name));
  one_device text := nullif(pg_catalog.current_setting('mad.device', true), '');
BEGIN
  IF out_table IS NULL OR NOT (pg_catalog.has_table_privilege(mad.caller_role(), out_table, 'SELECT')
                               OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_sidecar', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to read the predictions of %: role % may not SELECT from mad_out.%I', quote_literal(binding.name), quote_ident(mad.caller_role()), binding.name
      USING ERRCODE = 'insufficient_privilege', HINT = format('Its owner can run: GRANT SELECT ON mad_out.%I TO %I;', binding.name, mad.caller_role());
  END IF;
  IF NOT EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = binding.name) THEN
    RAISE EXCEPTION 'Prediction table % has no outcomes bound.', quote_literal(binding.name)
      USING ERRCODE = 'no_data_found',
            HINT = format('Bind them: SELECT mad.set_outcomes(%L, source => ..., key => %L, label => ..., observed_at => ...);', binding.name, binding.key_columns);
  END IF;
  IF one_device IS NULL THEN
    RETURN QUERY EXECUTE format('SELECT h.key, h.version, h.arm, h.outputs, h.scored_at FROM mad_history.%I h WHERE $1 IS NULL OR h.scored_at <= $1', binding.name)
      USING as_of;
  END IF;
  RETURN QUERY
    SELECT e.device || U&'\001E' || e.key, e.version, e.arm, e.outputs, e.scored_at FROM mad.edge_predictions e
    WHERE e.prediction_table = binding.name AND (one_device IS NULL OR e.device = one_device) AND (as_of IS NULL OR e.scored_at <= as_of);
END
$$;
