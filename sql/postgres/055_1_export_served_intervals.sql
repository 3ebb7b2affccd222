-- The training-set export's point-in-time join without a sort of every joined row (issue 17, docs/EXPORT.md "How it
-- runs").
--
-- The export grades each label by the prediction in force when it was observed: the key's latest served prediction
-- scored at or before observed_at. Through mad.served_predictions that was a join of every label to every history row
-- of its key and a DISTINCT ON sort of the joined rows (1.9 s of backend CPU at 1 M keys). mad.export_served answers
-- the same rows as mad.served_predictions, each with the time the next prediction of its key took over (`until`, NULL
-- for the latest): a prediction is in force at t when scored_at <= t < until, so each label meets at most one row in a
-- plain hash join on the key and nothing is sorted afterwards. A table's history gives `until` in the order of its
-- primary key (key, scored_at): an index scan, no sort.
--
-- Rights, as mad.served_predictions (051, 042_2), whose checks are repeated here because that function is not this
-- migration's to replace: a table's predictions to a role that may SELECT mad_out.<name> (or a member of mad_sidecar),
-- only when outcomes are bound; 'online:<model>' through mad.online_served_predictions (mad_admin only); the session's
-- 'mad.device' setting limits the answer to that device's rows as there. Only mad's own tables are read; the caller
-- reads the labels and the features on its own connection with its own rights, as before.

CREATE FUNCTION mad.export_served(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz, until timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp ROWS 100000 AS $$
DECLARE
  binding mad.prediction_tables;
  out_table regclass;
  one_device text := nullif(pg_catalog.current_setting('mad.device', true), '');
BEGIN
  IF table_name LIKE 'online:%' THEN
    RETURN QUERY
      SELECT s.key, s.version, s.arm, s.outputs, s.scored_at, lead(s.scored_at) OVER (PARTITION BY s.key ORDER BY s.scored_at)
      FROM mad.online_served_predictions(table_name, as_of) s;
    RETURN;
  END IF;
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

REVOKE ALL ON FUNCTION mad.export_served(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.export_served(text, timestamptz) TO mad_admin, mad_user;
