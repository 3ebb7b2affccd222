-- 050_2's mad.compare, with one change (marked 051): beside the prediction tables served through model@alias, the
-- model's online traffic ('online:<model>') when it has outcomes bound and the caller is mad_admin (who alone may read
-- it, 051_1_online_outcomes.sql; for others it is left out rather than failing the tables' rows). The log does not
-- record the alias a request came through, so the online rows are those of the alias's champion version (arm
-- champion) and of its canary version (arm canary), as for a table, scored since the current split began (050_2).

CREATE OR REPLACE FUNCTION mad.compare(model text, alias text, metric text DEFAULT NULL, horizon bigint DEFAULT 1000)
RETURNS TABLE (prediction_table text, arm text, version int, n bigint, n_labeled bigint, metric_name text, value double precision,
               difference double precision, ci_low double precision, ci_high double precision, statistic double precision,
               p_value double precision, test text, sample_ratio_chi_square double precision, sample_ratio_p_value double precision,
               sample_ratio_mismatch boolean, significant boolean, verdict text)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  champion int;
  canary int;
  percent double precision;
  binding record;
  r record;
  a record;
  b record;
  chosen text;
  lower_is_better boolean;
  has_a boolean;
  has_b boolean;
  d double precision; low double precision; high double precision; stat double precision; p double precision; used text;
  chi double precision; chi_p double precision; mismatch boolean;
  found_any boolean := false;
  since timestamptz;
BEGIN
  IF compare.metric IS NOT NULL AND compare.metric NOT IN ('accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'ece',
                                                           'cbpe_accuracy', 'mae', 'rmse', 'mape', 'mean_error') THEN
    RAISE EXCEPTION 'There is no metric %.', quote_literal(compare.metric) USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Classifiers: accuracy, precision, recall (z-test), log_loss (Welch); regressors: mae, mape, mean_error (Welch).';
  END IF;
  SELECT al.version INTO champion FROM mad.aliases al WHERE al.model = compare.model AND al.alias = compare.alias;
  IF champion IS NULL THEN
    RAISE EXCEPTION 'Model % has no alias %.', quote_literal(compare.model), quote_literal(compare.alias) USING ERRCODE = 'no_data_found';
  END IF;
  SELECT d.canary_version, d.canary_percent INTO canary, percent FROM mad.deployments d WHERE d.model = compare.model AND d.alias = compare.alias;
  -- When the current split began: the alias's last move, or the first of the deployment changes since the last one
  -- that set another champion, canary or percent, whichever is later (a shadow's changes leave the split alone).
  SELECT greatest(
           (SELECT max(h.moved_at) FROM mad.alias_history h WHERE h.model = compare.model AND h.alias = compare.alias),
           (SELECT min(h.changed_at) FROM mad.deployment_history h
            WHERE h.model = compare.model AND h.alias = compare.alias
              AND h.id > coalesce((SELECT max(x.id) FROM mad.deployment_history x
                                   WHERE x.model = compare.model AND x.alias = compare.alias
                                     AND (x.version, x.canary_version, x.canary_percent) IS DISTINCT FROM (champion, canary, percent)), 0)))
    INTO since;

  FOR binding IN SELECT p.name FROM mad.prediction_tables p JOIN mad.outcomes o ON o.prediction_table = p.name
                 WHERE split_part(p.model, '@', 1) = compare.model
                   AND CASE WHEN position('@' IN p.model) = 0 THEN compare.alias = 'production' ELSE split_part(p.model, '@', 2) = compare.alias END
                 UNION ALL  -- 051: the model's online traffic, where the caller may read it (mad_admin)
                 SELECT o.prediction_table FROM mad.outcomes o
                 WHERE o.online_model = compare.model AND pg_catalog.pg_has_role('mad_admin', 'MEMBER')  -- as its caller (an invoker)
                 ORDER BY 1 LOOP
    found_any := true;
    has_a := false; has_b := false; chosen := NULL;
    -- One window over everything served: 100,000 days from 2000-01-03.
    FOR r IN SELECT * FROM mad.outcome_metrics(binding.name, interval '100000 days', NULL, since) m
             WHERE (m.arm = 'champion' AND m.version = champion) OR (m.arm = 'canary' AND m.version = canary) LOOP
      CONTINUE WHEN r.metric <> coalesce(compare.metric, chosen, r.metric)
                    OR (compare.metric IS NULL AND chosen IS NULL AND r.metric NOT IN ('accuracy', 'mae'));
      chosen := r.metric;
      IF r.arm = 'champion' THEN a := r; has_a := true; ELSE b := r; has_b := true; END IF;
    END LOOP;
    CONTINUE WHEN chosen IS NULL;  -- neither arm served rows of this table
    lower_is_better := chosen IN ('log_loss', 'ece', 'mae', 'rmse', 'mape');

    d := NULL; low := NULL; high := NULL; stat := NULL; p := NULL; used := NULL; chi := NULL; chi_p := NULL; mismatch := NULL;
    IF has_a AND has_b THEN
      IF a.successes IS NOT NULL AND b.successes IS NOT NULL THEN
        SELECT x.difference, x.ci_low, x.ci_high, x.z, x.p_value, 'two-proportion z' INTO d, low, high, stat, p, used
        FROM mad.proportion_test(a.successes, a.trials, b.successes, b.trials) x;
      ELSIF a.variance IS NOT NULL AND b.variance IS NOT NULL THEN
        SELECT x.difference, x.ci_low, x.ci_high, x.t, x.p_value, 'welch t' INTO d, low, high, stat, p, used
        FROM mad.welch_test(a.value, a.variance, a.trials, b.value, b.variance, b.trials) x;
      ELSE
        d := b.value - a.value;
        used := 'none (not a rate or a mean)';
      END IF;
      SELECT x.chi_square, x.p_value, x.mismatch INTO chi, chi_p, mismatch
      FROM mad.sample_ratio_check(round(a.n_labeled / nullif(a.coverage, 0))::bigint, round(b.n_labeled / nullif(b.coverage, 0))::bigint, percent) x;
    END IF;

    IF has_a THEN
      prediction_table := binding.name; arm := 'champion'; version := champion; n := round(a.n_labeled / nullif(a.coverage, 0))::bigint;
      n_labeled := a.n_labeled; metric_name := chosen; value := a.value;
      difference := NULL; ci_low := NULL; ci_high := NULL; statistic := NULL; p_value := NULL; test := NULL;
      sample_ratio_chi_square := NULL; sample_ratio_p_value := NULL; sample_ratio_mismatch := NULL; significant := NULL; verdict := NULL;
      RETURN NEXT;
    END IF;
    IF has_b THEN
      prediction_table := binding.name; arm := 'canary'; version := canary; n := round(b.n_labeled / nullif(b.coverage, 0))::bigint;
      n_labeled := b.n_labeled; metric_name := chosen; value := b.value;
      difference := d; ci_low := low; ci_high := high; statistic := stat; p_value := p; test := used;
      sample_ratio_chi_square := chi; sample_ratio_p_value := chi_p; sample_ratio_mismatch := mismatch;
      significant := CASE WHEN NOT has_a OR p IS NULL OR least(a.n_labeled, b.n_labeled) < compare.horizon THEN NULL ELSE p < 0.05 END;
      verdict := CASE WHEN NOT has_a THEN 'no champion rows to compare with'
             WHEN mismatch THEN format('sample ratio mismatch (chi-square %s against %s %%): the split is broken; do not trust the comparison',
                                       round(chi::numeric, 1), percent)
             WHEN least(a.n_labeled, b.n_labeled) < compare.horizon
               THEN format('interim: %s and %s labelled rows, below the horizon of %s per arm; do not act on the p-value yet',
                           a.n_labeled, b.n_labeled, compare.horizon)
             WHEN p IS NULL THEN 'no test for this metric'
             WHEN p >= 0.05 THEN 'no significant difference'
             WHEN chosen = 'mean_error' THEN 'the canary''s mean error differs significantly'
             WHEN (d < 0) = lower_is_better THEN 'canary significantly better'
             ELSE 'canary significantly worse' END;
      RETURN NEXT;
    END IF;
  END LOOP;
  IF found_any AND since IS NOT NULL THEN
    RAISE NOTICE 'Counted only predictions scored since %, when %@% began serving %: earlier ones were served under another split.',
      to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), compare.model, compare.alias,
      CASE WHEN canary IS NULL THEN format('version %s alone', champion)
           ELSE format('version %s with version %s on %s %% as the canary', champion, canary, percent) END;
  END IF;
  IF NOT found_any THEN
    RAISE NOTICE 'No prediction table served through %@% (nor its online traffic) has outcomes bound: nothing to compare.', compare.model, compare.alias;
  END IF;
END
$$;
