-- Outcome floors (issue 17, model rot as an alert): the owner of a prediction table with outcomes names a metric and
-- the level a served version must not fall below, and every sidecar's /metrics then carries, per version and arm,
-- the metric of its latest window with enough labels beside the floor, and whether it is below it:
--
--   SELECT mad.set_outcome_floor('churn_scores', 'accuracy', 0.80);                  -- alert when accuracy < 0.80
--   SELECT mad.set_outcome_floor('churn_scores', 'log_loss', 0.45, "window" => '7 days', min_labeled => 500);
--   SELECT mad.set_outcome_floor('churn_scores', 'accuracy', NULL);                  -- no floor any more
--
-- For the metrics where lower is better (log_loss, ece, mae, rmse, mape) the floor is a ceiling: "below the floor"
-- means worse than it, whichever way worse points. mean_error has no better direction and takes no floor.
--
-- The gauges read mad.outcome_metrics as the gate (027_3) does: from a definer function, with the rights of mad's
-- owner (and, for the served history, 042_2's pass for sidecars), every outcome_gauge_seconds (one pass over the table's served history per floor table and read). A table
-- whose outcomes cannot be read gives a row with the reason and no values, so one broken source does not hide the
-- others.

CREATE TABLE mad.outcome_floors (
  prediction_table text NOT NULL REFERENCES mad.outcomes (prediction_table) ON DELETE CASCADE,
  metric text NOT NULL CHECK (metric IN ('accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'ece', 'cbpe_accuracy',
                                         'mae', 'rmse', 'mape')),
  floor double precision NOT NULL CHECK (floor NOT IN ('NaN', 'Infinity', '-Infinity')),  -- PostgreSQL's NaN equals itself
  "window" interval NOT NULL DEFAULT '1 day',
  -- A window with fewer labels than this is not judged: the gauge shows the latest window that has them.
  min_labeled bigint NOT NULL DEFAULT 100 CHECK (min_labeled > 0),
  updated_by text NOT NULL DEFAULT mad.caller_role(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (prediction_table, metric)
);
GRANT SELECT ON mad.outcome_floors TO mad_admin, mad_user, mad_sidecar;

INSERT INTO mad.settings (name, value, description) VALUES
  ('outcome_gauge_seconds', '300', 'How often each sidecar reads mad.outcome_gauges() for /metrics: each read computes mad.outcome_metrics once per prediction table with a floor.');

-- Sets (or, with floor NULL, removes) the floor of one metric of a prediction table with outcomes. Its owner's or
-- mad_admin's, as the outcomes binding is.
CREATE FUNCTION mad.set_outcome_floor(table_name text, metric text, floor double precision, "window" interval DEFAULT '1 day',
                                      min_labeled bigint DEFAULT 100)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
BEGIN
  binding := mad.require_prediction_table(set_outcome_floor.table_name);
  PERFORM mad.require_binding_owner(binding, 'set an outcome floor on ' || quote_ident(binding.name));
  IF NOT EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = binding.name) THEN
    RAISE EXCEPTION 'Prediction table % has no outcomes bound, so no metric to hold to a floor.', quote_literal(binding.name)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Bind them first: SELECT mad.set_outcomes(table, source => ..., key => ..., label => ..., observed_at => ...).';
  END IF;
  IF set_outcome_floor.metric IS NULL OR set_outcome_floor.metric NOT IN ('accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'ece',
                                                                          'cbpe_accuracy', 'mae', 'rmse', 'mape') THEN
    RAISE EXCEPTION 'No metric % takes a floor.', coalesce(quote_literal(set_outcome_floor.metric), 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Classifiers: accuracy, precision, recall, f1, roc_auc, log_loss, ece, cbpe_accuracy; regressors: mae, rmse, mape (mean_error has no better direction).';
  END IF;
  IF set_outcome_floor.floor IS NULL THEN
    DELETE FROM mad.outcome_floors f WHERE f.prediction_table = binding.name AND f.metric = set_outcome_floor.metric;
    RETURN;
  END IF;
  IF set_outcome_floor.floor IN ('NaN', 'Infinity', '-Infinity') THEN
    RAISE EXCEPTION 'The floor of % must be a finite number; got %.', set_outcome_floor.metric, set_outcome_floor.floor
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF set_outcome_floor."window" IS NULL OR set_outcome_floor."window" <= interval '0'
     OR extract(month FROM set_outcome_floor."window") <> 0 OR extract(year FROM set_outcome_floor."window") <> 0 THEN
    RAISE EXCEPTION 'The window % is not a positive interval of days, hours or less (months have no fixed length).', coalesce(set_outcome_floor."window"::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use for example ''1 day'' or ''7 days''.';
  END IF;
  IF set_outcome_floor.min_labeled IS NULL OR set_outcome_floor.min_labeled < 1 THEN
    RAISE EXCEPTION 'min_labeled must be at least 1; got %.', coalesce(set_outcome_floor.min_labeled::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO mad.outcome_floors AS f (prediction_table, metric, floor, "window", min_labeled)
  VALUES (binding.name, set_outcome_floor.metric, set_outcome_floor.floor, set_outcome_floor."window", set_outcome_floor.min_labeled)
  ON CONFLICT ON CONSTRAINT outcome_floors_pkey DO UPDATE SET floor = EXCLUDED.floor, "window" = EXCLUDED."window",
    min_labeled = EXCLUDED.min_labeled, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at;
END
$$;

-- The gauges: per floor, version and arm, the latest of the last seven windows with at least min_labeled labels.
-- below_floor is true when the value is worse than the floor. A table whose outcomes cannot be read, or may not be
-- read on its owner's behalf, gives one row per floor with the reason in error and no values.
CREATE FUNCTION mad.outcome_gauges()
RETURNS TABLE (prediction_table text, version int, arm text, metric text, value double precision, floor double precision,
               below_floor boolean, n_labeled bigint, window_start timestamptz, error text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  t record;
  refusal text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'read the outcome gauges');
  FOR t IN SELECT f.prediction_table AS name, f."window" FROM mad.outcome_floors f GROUP BY 1, 2 ORDER BY 1, 2 LOOP
    -- mad's owner reads the source here, so only what the table's owner may read itself: its grants on the key,
    -- label and time columns now (a REVOKE after set_outcomes applies), and no row security, which a definer
    -- cannot apply on the owner's behalf.
    SELECT CASE
             WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = p.owner)
               THEN format('its owner %s no longer exists', quote_ident(p.owner))
             WHEN EXISTS (SELECT FROM unnest(o.key_columns || ARRAY[o.label_column, o.observed_at_column]) c(name)
                          WHERE NOT pg_catalog.has_column_privilege(p.owner, o.source, c.name, 'SELECT'))
               THEN format('its owner %s may not read the key, label and observed_at columns of %s', quote_ident(p.owner), o.source)
             WHEN (SELECT c.relrowsecurity FROM pg_catalog.pg_class c WHERE c.oid = o.source)
               THEN format('%s has row security, which the gauges cannot apply for its owner: read mad.performance as the owner instead', o.source)
           END INTO refusal
    FROM mad.prediction_tables p JOIN mad.outcomes o ON o.prediction_table = p.name WHERE p.name = t.name;
    IF refusal IS NOT NULL THEN
      RETURN QUERY
      SELECT t.name, NULL::int, NULL::text, f.metric, NULL::double precision, f.floor, NULL::boolean, NULL::bigint, NULL::timestamptz, refusal
      FROM mad.outcome_floors f WHERE f.prediction_table = t.name AND f."window" = t."window";
      CONTINUE;
    END IF;
    BEGIN
      RETURN QUERY
      SELECT DISTINCT ON (m.version, m.arm, f.metric)
             t.name, m.version, m.arm, f.metric, m.value, f.floor,
             CASE WHEN f.metric IN ('log_loss', 'ece', 'mae', 'rmse', 'mape') THEN m.value > f.floor ELSE m.value < f.floor END,
             m.n_labeled, m.window_start, NULL::text
      FROM mad.outcome_metrics(t.name, t."window") m
      JOIN mad.outcome_floors f ON f.prediction_table = t.name AND f."window" = t."window" AND f.metric = m.metric
      WHERE m.value IS NOT NULL AND m.n_labeled >= f.min_labeled AND m.window_end > pg_catalog.now() - 7 * t."window"
      ORDER BY m.version, m.arm, f.metric, m.window_start DESC;
    EXCEPTION WHEN OTHERS THEN
      RETURN QUERY
      SELECT t.name, NULL::int, NULL::text, f.metric, NULL::double precision, f.floor, NULL::boolean, NULL::bigint, NULL::timestamptz, SQLERRM
      FROM mad.outcome_floors f WHERE f.prediction_table = t.name AND f."window" = t."window";
    END;
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION mad.set_outcome_floor(text, text, double precision, interval, bigint), mad.outcome_gauges() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.set_outcome_floor(text, text, double precision, interval, bigint) TO mad_admin, mad_user;
GRANT EXECUTE ON FUNCTION mad.outcome_gauges() TO mad_sidecar;
