-- The outcome gate judged champion and canary over everything served, as mad.compare did before 050_2: a champion's
-- history from before the canary (a month alone, another split) weighed in, so old rows could pass a canary that is
-- worse now or roll back one that is as good. Both now count only predictions scored since the current split began,
-- by one rule in one function, mad.split_began (taken out of 050_2's mad.compare, unchanged).
--
-- mad.compare is 051_2's with its inline rule replaced by a call (marked 054); mad.gate_outcome is 027_3's with since
-- passed to mad.outcome_metrics (marked 054).

-- When the current split of model@alias began: the alias's last move, or the first of the deployment changes since
-- the last one that set another champion, canary or percent, whichever is later (a shadow's changes leave the split
-- alone). NULL when neither has history. Runs as its caller, who reads the two histories as mad.compare's callers do.
CREATE FUNCTION mad.split_began(model text, alias text) RETURNS timestamptz
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = mad, pg_temp AS $$
  SELECT greatest(
           (SELECT max(h.moved_at) FROM mad.alias_history h WHERE h.model = split_began.model AND h.alias = split_began.alias),
           (SELECT min(h.changed_at) FROM mad.deployment_history h
            WHERE h.model = split_began.model AND h.alias = split_began.alias
              AND h.id > coalesce((SELECT max(x.id) FROM mad.deployment_history x
                                   WHERE x.model = split_began.model AND x.alias = split_began.alias
                                     AND (x.version, x.canary_version, x.canary_percent) IS DISTINCT FROM
                                         ((SELECT al.version FROM mad.aliases al WHERE al.model = split_began.model AND al.alias = split_began.alias),
                                          (SELECT d.canary_version FROM mad.deployments d WHERE d.model = split_began.model AND d.alias = split_began.alias),
                                          (SELECT d.canary_percent FROM mad.deployments d WHERE d.model = split_began.model AND d.alias = split_began.alias))), 0)))
$$;
REVOKE ALL ON FUNCTION mad.split_began(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.split_began(text, text) TO mad_admin, mad_user;

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
  since := mad.split_began(compare.model, compare.alias);  -- 054: the rule, shared with the outcome gate

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

CREATE OR REPLACE FUNCTION mad.gate_outcome(model text, alias text) RETURNS text
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
  since timestamptz := mad.split_began(gate_outcome.model, gate_outcome.alias);  -- 054
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
      FROM mad.outcome_metrics(binding.name, interval '100000 days', NULL, since) m  -- 054: since the split began
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
