-- Drift monitoring, part 3 (issue 16): a deployment gate on drift. A rolling canary of model@alias whose drift gate
-- is on (mad.set_drift_gate, mad_admin only) passes a step only while no input column of the canary's own traffic
-- drifts beyond its threshold: the canary version's profile counts since the canary started (the doors count a
-- canary's rows under its own version, against its own baseline or first window), in every prediction table served
-- through model@alias and in the model's online requests ('online:<model>', 026_2), as one window. Any drifted
-- metric of an input fails the gate, and mad.advance_deployments ends the canary with the reason (as 017's gates).
-- A column is judged once the canary has counted gate_min_rows rows in it (the error-rate gate's setting): the
-- thresholds grow for small windows anyway, so this only keeps a handful of rows from deciding.

CREATE TABLE mad.drift_gates (
  model text NOT NULL,
  alias text NOT NULL,
  set_by text NOT NULL DEFAULT mad.caller_role(),
  set_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (model, alias),
  FOREIGN KEY (model, alias) REFERENCES mad.aliases (model, alias) ON DELETE CASCADE
);
GRANT SELECT ON mad.drift_gates TO mad_admin, mad_user, mad_sidecar;

-- Turns the drift gate of model@alias on (or off): it judges every rolling canary of the alias from then on, until
-- turned off. Returns whether it is on.
CREATE FUNCTION mad.set_drift_gate(model text, alias text, enabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM mad.require_role('mad_admin', 'configure a deployment gate');
  PERFORM mad.lock_deployments(set_drift_gate.model, set_drift_gate.alias);
  PERFORM mad.require_alias(set_drift_gate.model, set_drift_gate.alias);
  IF coalesce(enabled, false) THEN
    INSERT INTO mad.drift_gates AS g (model, alias) VALUES (set_drift_gate.model, set_drift_gate.alias)
    ON CONFLICT (model, alias) DO UPDATE SET set_by = mad.caller_role(), set_at = clock_timestamp();
  ELSE
    DELETE FROM mad.drift_gates g WHERE g.model = set_drift_gate.model AND g.alias = set_drift_gate.alias;
  END IF;
  RETURN coalesce(enabled, false);
END
$$;

-- The drifted input metrics of one version in one set of profile counts (a prediction table's, or 'online:<model>'),
-- over one window from since to the end of the current hour; columns with fewer than min_rows rows are not judged.
CREATE FUNCTION mad.drifted_inputs(counts_of text, model_name text, model_version int, since timestamptz, min_rows bigint)
RETURNS TABLE (column_name text, metric text, value double precision, threshold double precision, n_baseline bigint, n_current bigint)
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables; -- only the fields mad.drift_counts reads
  first timestamptz := date_trunc('hour', since);
BEGIN
  binding.name := counts_of;
  binding.model := model_name;
  RETURN QUERY
  SELECT d.column_name, m.metric, m.value, m.threshold,
         (SELECT sum(x) FROM unnest(d.baseline) x)::bigint + d.baseline_null,
         coalesce((SELECT sum(x) FROM unnest(d.current) x)::bigint, 0) + d.current_null
  FROM mad.drift_counts(binding, first, date_trunc('hour', now()) + interval '1 hour' - first) d
  CROSS JOIN LATERAL mad.drift_metric_values(d.type, d.baseline, d.baseline_null, d.current, d.current_null,
                                             CASE WHEN d.type = 'numeric' THEN mad.bin_positions(d.edges) END, d.spread) WITH ORDINALITY m(metric, value, threshold, drifted, n)
  WHERE d.version = model_version AND d.kind = 'input' AND m.drifted
    AND coalesce((SELECT sum(x) FROM unnest(d.current) x)::bigint, 0) + d.current_null >= min_rows
  ORDER BY d.column_name, m.n;
END
$$;

-- The gate (017's contract: NULL passes, else why it fails).
CREATE FUNCTION mad.gate_drift(model text, alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  canary int;
  since timestamptz;
  counts_of text;
  hit record;
  hits int;
BEGIN
  IF NOT EXISTS (SELECT FROM mad.drift_gates g WHERE g.model = gate_drift.model AND g.alias = gate_drift.alias) THEN
    RETURN NULL;
  END IF;
  SELECT d.canary_version, d.updated_at INTO canary, since FROM mad.deployments d WHERE d.model = gate_drift.model AND d.alias = gate_drift.alias;
  IF canary IS NULL THEN
    RETURN NULL;
  END IF;
  -- The canary's traffic: since the canary started (its last 'canary' change).
  since := coalesce((SELECT max(h.changed_at) FROM mad.deployment_history h
                     WHERE h.model = gate_drift.model AND h.alias = gate_drift.alias AND h.kind = 'canary'), since);
  FOR counts_of IN
    SELECT p.name FROM mad.prediction_tables p
    WHERE split_part(p.model, '@', 1) = gate_drift.model AND mad.reference_alias(p.model) = gate_drift.alias
    UNION ALL SELECT 'online:' || gate_drift.model
    ORDER BY 1 LOOP
    SELECT count(*) INTO hits FROM mad.drifted_inputs(counts_of, gate_drift.model, canary, since, mad.setting_int('gate_min_rows', 100));
    IF hits > 0 THEN
      SELECT * INTO hit FROM mad.drifted_inputs(counts_of, gate_drift.model, canary, since, mad.setting_int('gate_min_rows', 100)) LIMIT 1;
      RETURN format('the canary (version %s) drifted on %s input metric(s) of %s since %s; first: %s %s = %s > threshold %s (%s rows against a baseline of %s)',
                    canary, hits, counts_of, to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'), hit.column_name, hit.metric,
                    round(hit.value::numeric, 4), round(hit.threshold::numeric, 4), hit.n_current, hit.n_baseline);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

INSERT INTO mad.deployment_gates (name, gate, description) VALUES
  ('drift', 'mad.gate_drift(text, text)', 'With mad.set_drift_gate on: no input column of the canary''s own traffic may drift beyond its threshold (docs/MONITORING.md).');

REVOKE ALL ON FUNCTION mad.set_drift_gate(text, text, boolean), mad.drifted_inputs(text, text, integer, timestamp with time zone, bigint),
  mad.gate_drift(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.set_drift_gate(text, text, boolean) TO mad_admin;
