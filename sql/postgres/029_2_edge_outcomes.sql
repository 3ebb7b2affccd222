-- Outcomes recorded on a device flow back (docs/SYNC.md "Outcomes"), and mad.performance reads the fleet's rows.
--
-- * A device binds an outcome source in its own file as PostgreSQL does (`mad outcomes set`, SQLite mad_outcomes);
--   a push stages each bound source's rows (key, label, observed_at) with binary COPY, as it stages predictions
--   (029_1), and mad.finish_push_outcomes adds them to mad.edge_outcomes under the claimed device, only adding:
--   pushing twice adds nothing, and no device writes another's rows.
-- * mad.served_predictions (022_1), the one reader of what was served that mad.performance and mad.compare use, now
--   adds the pushed predictions of the table to its history rows. A device row's key is the device's id, U+001E,
--   then the key as the device spelled it (mad.key_text), so two devices' key 42 and the central key 42 stay three
--   rows. Its signature is unchanged. `SET mad.device = 'shop-17'` narrows it (and so the reports) to one device.
-- * Labels still come from the bound source, read as the caller: a fleet's labels join through the source the
--   table's owner binds, e.g. a view of the central labels UNION ALL mad.edge_outcomes' served_key (see SYNC.md);
--   mad.edge_outcomes is row-secured as mad.edge_predictions is (024), so such a view shows its owner's share.

CREATE TABLE mad.edge_outcomes (
  device text NOT NULL REFERENCES mad.devices (id),
  prediction_table text NOT NULL,
  key text NOT NULL,                -- the outcome source's key, as mad.key_text spells it
  label text NOT NULL,
  observed_at timestamptz NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  -- The key mad.served_predictions gives this device's predictions: what a label must carry to grade them.
  served_key text GENERATED ALWAYS AS (device || U&'\001E' || key) STORED,
  PRIMARY KEY (device, prediction_table, key, observed_at)
);
CREATE INDEX edge_outcomes_table ON mad.edge_outcomes (prediction_table, observed_at);

GRANT SELECT ON mad.edge_outcomes TO mad_admin, mad_user;

-- As 024 for mad.edge_predictions: who may SELECT the prediction table, the device's owner, and mad_admin.
ALTER TABLE mad.edge_outcomes ENABLE ROW LEVEL SECURITY;
CREATE POLICY edge_outcomes_read ON mad.edge_outcomes FOR SELECT USING (
  pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'mad_out' AND c.relname = edge_outcomes.prediction_table
               AND pg_catalog.has_table_privilege(c.oid, 'SELECT'))
  OR EXISTS (SELECT FROM mad.devices d JOIN pg_catalog.pg_roles r ON r.rolname = d.owner
             WHERE d.id = edge_outcomes.device AND pg_catalog.pg_has_role(r.oid, 'MEMBER')));

-- Stages a push's outcomes: pg_temp.mad_push_outcomes, made and owned here, INSERT (COPY) for the caller only, as
-- 029_1's staging of predictions (the same reasons: no device column, nothing of the caller's rides along).
CREATE FUNCTION mad.begin_push_outcomes(device text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_device', 'push device outcomes');
  PERFORM mad.claim_device(device);
  IF pg_catalog.to_regclass('pg_temp.mad_push_outcomes') IS NOT NULL THEN
    RAISE EXCEPTION 'Outcomes are already staged in this transaction (pg_temp.mad_push_outcomes exists).'
      USING ERRCODE = 'object_in_use', HINT = 'Finish them with mad.finish_push_outcomes, or roll back and begin again.';
  END IF;
  CREATE TEMP TABLE mad_push_outcomes (
    prediction_table text NOT NULL,
    key text NOT NULL,
    label text NOT NULL,
    observed_at timestamptz NOT NULL
  ) ON COMMIT DROP;
  EXECUTE format('GRANT INSERT ON pg_temp.mad_push_outcomes TO %I', mad.caller_role());
END
$$;

-- Adds the staged outcomes for the device; returns how many were new.
CREATE FUNCTION mad.finish_push_outcomes(device text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  device_id text;
  staged regclass := pg_catalog.to_regclass('pg_temp.mad_push_outcomes');
  added bigint;
BEGIN
  PERFORM mad.require_role('mad_device', 'push device outcomes');
  device_id := mad.claim_device(device);
  IF staged IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = staged AND c.relkind = 'r' AND c.relowner =
                                     (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)) THEN
    RAISE EXCEPTION 'No outcomes are staged in this transaction.' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'Call mad.begin_push_outcomes(device) first, then COPY the rows into pg_temp.mad_push_outcomes, in the same transaction.';
  END IF;

  INSERT INTO mad.edge_outcomes (device, prediction_table, key, label, observed_at)
  SELECT device_id, o.prediction_table, o.key, o.label, o.observed_at FROM pg_temp.mad_push_outcomes o
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS added = ROW_COUNT;
  TRUNCATE pg_temp.mad_push_outcomes;
  UPDATE mad.devices d SET last_push_at = now() WHERE d.id = device_id;
  RETURN added;
END
$$;

-- 022_1's reader of what was served, with the table's pushed predictions added (see the header). The caller's right
-- to read them is the same: who may SELECT mad_out.<name> reads its history and its fleet's rows.
CREATE OR REPLACE FUNCTION mad.served_predictions(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
  out_table regclass := pg_catalog.to_regclass(format('mad_out.%I', binding.name));
  one_device text := nullif(pg_catalog.current_setting('mad.device', true), '');
BEGIN
  IF out_table IS NULL OR NOT pg_catalog.has_table_privilege(mad.caller_role(), out_table, 'SELECT') THEN
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

REVOKE ALL ON FUNCTION mad.begin_push_outcomes(text), mad.finish_push_outcomes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.begin_push_outcomes(text), mad.finish_push_outcomes(text) TO mad_device;
