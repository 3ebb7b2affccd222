-- Who may read a prediction table's served history, as one rule (issue 17; docs/OUTCOMES.md, docs/SECURITY.md):
-- 051's mad.served_predictions and 055_1's mad.export_served each wrote the same three checks, and one rule written
-- twice drifts. mad.require_served_history holds them, and both call it (mad.served_once calls served_predictions):
--
-- * the table exists (mad.require_prediction_table's message names what does);
-- * the caller may SELECT mad_out.<name>, or is a member of mad_sidecar (gates and gauges judge served history);
-- * outcomes are bound to it (no_data_found, with the mad.set_outcomes call to make).
--
-- Called only inside definer functions, as mad's owner, so it judges mad.caller_role() (the session's effective role)
-- and is granted to nobody. Otherwise 051's and 055_1's functions unchanged.

CREATE FUNCTION mad.require_served_history(table_name text) RETURNS mad.prediction_tables
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  out_table regclass;
BEGIN
  binding := mad.require_prediction_table(table_name);
  out_table := pg_catalog.to_regclass(format('mad_out.%I', binding.name));
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
  RETURN binding;
END
$$;

REVOKE ALL ON FUNCTION mad.require_served_history(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION mad.served_predictions(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  one_device text := nullif(pg_catalog.current_setting('mad.device', true), '');
BEGIN
  IF table_name LIKE 'online:%' THEN
    RETURN QUERY SELECT * FROM mad.online_served_predictions(table_name, as_of);
    RETURN;
  END IF;
  binding := mad.require_served_history(table_name);  -- 060
  IF one_device IS NULL THEN
    RETURN QUERY EXECUTE format('SELECT h.key, h.version, h.arm, h.outputs, h.scored_at FROM mad_history.%I h WHERE $1 IS NULL OR h.scored_at <= $1', binding.name)
      USING as_of;
  END IF;
  RETURN QUERY
    SELECT e.device || U&'\001E' || e.key, e.version, e.arm, e.outputs, e.scored_at FROM mad.edge_predictions e
    WHERE e.prediction_table = binding.name AND (one_device IS NULL OR e.device = one_device) AND (as_of IS NULL OR e.scored_at <= as_of);
END
$$;

CREATE OR REPLACE FUNCTION mad.export_served(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz, until timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp ROWS 100000 AS $$
DECLARE
  binding mad.prediction_tables;
  one_device text := nullif(pg_catalog.current_setting('mad.device', true), '');
BEGIN
  IF table_name LIKE 'online:%' THEN
    RETURN QUERY
      SELECT s.key, s.version, s.arm, s.outputs, s.scored_at, lead(s.scored_at) OVER (PARTITION BY s.key ORDER BY s.scored_at)
      FROM mad.online_served_predictions(table_name, as_of) s;
    RETURN;
  END IF;
  binding := mad.require_served_history(table_name);  -- 060
  IF one_device IS NULL THEN
    -- In primary-key order, so the window needs no sort.
    RETURN QUERY EXECUTE format(
      'SELECT h.key, h.version, h.arm, h.outputs, h.scored_at, lead(h.scored_at) OVER (PARTITION BY h.key ORDER BY h.scored_at) '
      'FROM mad_history.%I h WHERE $1 IS NULL OR h.scored_at <= $1', binding.name)
      USING as_of;
  END IF;
  -- A device's keys are spelt device U+001E key, so they never share a partition with the central history's.
  RETURN QUERY
    SELECT e.device || U&'\001E' || e.key, e.version, e.arm, e.outputs, e.scored_at,
           lead(e.scored_at) OVER (PARTITION BY e.device, e.key ORDER BY e.scored_at)
    FROM mad.edge_predictions e
    WHERE e.prediction_table = binding.name AND (one_device IS NULL OR e.device = one_device) AND (as_of IS NULL OR e.scored_at <= as_of);
END
$$;
