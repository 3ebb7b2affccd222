-- The outcome gate (issue 17, model rot as a gate): a rolling canary may require that its metric on outcomes is not
-- worse than the champion's by more than a margin, before each step. One row per deployment that asks for it; the
-- gate (017's extension point, mad.deployment_gates) passes every deployment without a row.

CREATE TABLE mad.outcome_gates (
  model text NOT NULL,
  alias text NOT NULL,
  metric text NOT NULL CHECK (metric IN ('accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'ece', 'cbpe_accuracy',
                                         'mae', 'rmse', 'mape')),
  margin double precision NOT NULL CHECK (margin >= 0),
  -- Below this many labelled canary rows the gate does not judge (passes).
  min_labeled bigint NOT NULL DEFAULT 100 CHECK (min_labeled > 0),
  updated_by text NOT NULL DEFAULT mad.caller_role(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (model, alias),
  FOREIGN KEY (model, alias) REFERENCES mad.aliases (model, alias) ON DELETE CASCADE
);
GRANT SELECT ON mad.outcome_gates TO mad_admin, mad_user, mad_sidecar;

-- Sets (or, with metric NULL, removes) the outcome gate of model@alias. Deployments are mad_admin's: so is this.
CREATE FUNCTION mad.set_outcome_gate(model text, alias text, metric text, margin double precision DEFAULT 0, min_labeled bigint DEFAULT 100)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_alias(set_outcome_gate.model, set_outcome_gate.alias);
  IF set_outcome_gate.metric IS NULL THEN
    DELETE FROM mad.outcome_gates g WHERE g.model = set_outcome_gate.model AND g.alias = set_outcome_gate.alias;
    RETURN;
  END IF;
  INSERT INTO mad.outcome_gates AS g (model, alias, metric, margin, min_labeled)
  VALUES (set_outcome_gate.model, set_outcome_gate.alias, set_outcome_gate.metric, set_outcome_gate.margin, set_outcome_gate.min_labeled)
  ON CONFLICT ON CONSTRAINT outcome_gates_pkey DO UPDATE SET metric = EXCLUDED.metric, margin = EXCLUDED.margin,
    min_labeled = EXCLUDED.min_labeled, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at;
END
$$;

-- The gate: for each prediction table served through model@alias with outcomes bound, the canary's metric (over
-- everything served, as mad.compare) against the champion's. Runs inside mad.advance_deployments, as mad's owner; a
-- failure to read the outcomes fails the gate (the canary rolls back rather than step unjudged), with the reason.
CREATE FUNCTION mad.gate_outcome(model text, alias text) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = mad, pg_temp AS $$
DECLARE
  gate mad.outcome_gates;
  champion int;
  canary int;
  binding record;
  a double precision;
  b double precision;
  labeled bigint;
  lower_is_better boolean;
BEGIN
  SELECT * INTO gate FROM mad.outcome_gates g WHERE g.model = gate_outcome.model AND g.alias = gate_outcome.alias;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT al.version INTO champion FROM mad.aliases al WHERE al.model = gate_outcome.model AND al.alias = gate_outcome.alias;
  SELECT d.canary_version INTO canary FROM mad.deployments d WHERE d.model = gate_outcome.model AND d.alias = gate_outcome.alias;
  lower_is_better := gate.metric IN ('log_loss', 'ece', 'mae', 'rmse', 'mape');
  FOR binding IN SELECT p.name FROM mad.prediction_tables p JOIN mad.outcomes o ON o.prediction_table = p.name
                 WHERE split_part(p.model, '@', 1) = gate_outcome.model
                   AND CASE WHEN position('@' IN p.model) = 0 THEN gate_outcome.alias = 'production' ELSE split_part(p.model, '@', 2) = gate_outcome.alias END
                 ORDER BY p.name LOOP
    BEGIN
      SELECT max(m.value) FILTER (WHERE m.arm = 'champion'), max(m.value) FILTER (WHERE m.arm = 'canary'), max(m.n_labeled) FILTER (WHERE m.arm = 'canary')
      INTO a, b, labeled
      FROM mad.outcome_metrics(binding.name, interval '100000 days') m
      WHERE m.metric = gate.metric AND ((m.arm = 'champion' AND m.version = champion) OR (m.arm = 'canary' AND m.version = canary));
    EXCEPTION WHEN OTHERS THEN
      RETURN format('could not read the outcomes of %s: %s', binding.name, SQLERRM);
    END;
    CONTINUE WHEN a IS NULL OR b IS NULL OR labeled < gate.min_labeled;
    IF (lower_is_better AND b > a + gate.margin) OR (NOT lower_is_better AND b < a - gate.margin) THEN
      RETURN format('on %s the canary''s %s is %s against the champion''s %s (%s labelled canary rows), worse by more than the margin %s',
                    binding.name, gate.metric, round(b::numeric, 4), round(a::numeric, 4), labeled, gate.margin);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

INSERT INTO mad.deployment_gates (name, gate, description) VALUES
  ('outcome', 'mad.gate_outcome(text, text)',
   'With mad.set_outcome_gate: the canary''s metric on outcomes may be worse than the champion''s by at most the margin.');

REVOKE ALL ON FUNCTION mad.set_outcome_gate(text, text, text, double precision, bigint), mad.gate_outcome(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.set_outcome_gate(text, text, text, double precision, bigint) TO mad_admin;
