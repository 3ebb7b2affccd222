-- mad.compare: champion against canary on outcomes (issue 17, A/B). Sums in, tests out, as GrowthBook does from
-- warehouse aggregates: a rate (accuracy, precision, recall) by 022_3's two-proportion z-test, a mean (log_loss, mae,
-- mape, mean_error) by Welch's t-test below, and the split by 022_3's sample-ratio check.
--
-- Repeated looks: a p-value below 0.05 means 5 % false alarms for ONE look at a sample size fixed in advance. A canary
-- watched every hour and stopped at the first p < 0.05 is tested many times, and a null effect's p-value wanders
-- below 0.05 sooner or later (about 20 % of the time over 10 looks). mad.compare therefore uses a fixed horizon:
-- `significant` (and a verdict other than "interim") is given only once both arms have `horizon` labelled rows
-- (default 1,000; set it before the experiment, from the effect you want to see), and is NULL before.

-- The math is pure (no table is read): callers of the tests may run it.
GRANT EXECUTE ON FUNCTION mad.log_gamma(double precision), mad.gamma_q(double precision, double precision) TO mad_admin, mad_user;

-- I_x(a, b), the regularized incomplete beta function: Numerical Recipes (2nd ed., 6.4), its continued fraction.
CREATE FUNCTION mad.incomplete_beta(a double precision, b double precision, x double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
DECLARE
  front double precision;
  flip boolean := x > (a + 1) / (a + b + 2);
  p double precision := CASE WHEN x > (a + 1) / (a + b + 2) THEN b ELSE a END;
  q double precision := CASE WHEN x > (a + 1) / (a + b + 2) THEN a ELSE b END;
  z double precision := CASE WHEN x > (a + 1) / (a + b + 2) THEN 1 - x ELSE x END;
  c double precision := 1;
  d double precision;
  h double precision;
  aa double precision;
  del double precision;
  m2 int;
  tiny constant double precision := 1e-300;
BEGIN
  IF x <= 0 THEN RETURN 0; END IF;
  IF x >= 1 THEN RETURN 1; END IF;
  d := 1 - (p + q) * z / (p + 1);
  IF abs(d) < tiny THEN d := tiny; END IF;
  d := 1 / d;
  h := d;
  FOR m IN 1..1000 LOOP
    m2 := 2 * m;
    aa := m * (q - m) * z / ((p - 1 + m2) * (p + m2));
    d := 1 + aa * d; IF abs(d) < tiny THEN d := tiny; END IF;
    c := 1 + aa / c; IF abs(c) < tiny THEN c := tiny; END IF;
    d := 1 / d;
    h := h * d * c;
    aa := -(p + m) * (p + q + m) * z / ((p + m2) * (p + 1 + m2));
    d := 1 + aa * d; IF abs(d) < tiny THEN d := tiny; END IF;
    c := 1 + aa / c; IF abs(c) < tiny THEN c := tiny; END IF;
    d := 1 / d;
    del := d * c;
    h := h * del;
    EXIT WHEN abs(del - 1) < 3e-16;
  END LOOP;
  front := mad.log_gamma(p + q) - mad.log_gamma(p) - mad.log_gamma(q) + p * ln(z) + q * ln(1 - z);
  front := CASE WHEN front < -700 THEN 0 ELSE exp(front) * h / p END;
  RETURN greatest(0, least(1, CASE WHEN flip THEN 1 - front ELSE front END));
END
$$;

-- The two-sided p-value of Student's t with df degrees of freedom.
CREATE FUNCTION mad.student_t_p(t double precision, df double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
  SELECT mad.incomplete_beta(df / 2, 0.5, df / (df + t * t));
$$;

-- Welch's t-test of arm b's mean against arm a's (means, per-row variances, counts): the difference b − a with a 95 %
-- interval (t quantile by bisection), t, the Welch–Satterthwaite degrees of freedom, and the two-sided p-value;
-- as scipy.stats.ttest_ind_from_stats(..., equal_var=False).
CREATE FUNCTION mad.welch_test(mean_a double precision, variance_a double precision, n_a bigint,
                               mean_b double precision, variance_b double precision, n_b bigint,
  OUT difference double precision, OUT ci_low double precision, OUT ci_high double precision, OUT t double precision,
  OUT df double precision, OUT p_value double precision)
LANGUAGE plpgsql IMMUTABLE SET search_path = mad, pg_temp AS $$
DECLARE
  se double precision;
  low double precision := 0;
  high double precision := 1000;
  mid double precision;
BEGIN
  IF n_a < 2 OR n_b < 2 OR variance_a IS NULL OR variance_b IS NULL THEN
    RETURN; -- a variance needs two rows per arm
  END IF;
  difference := mean_b - mean_a;
  se := sqrt(variance_a / n_a + variance_b / n_b);
  IF se = 0 THEN
    RETURN;
  END IF;
  t := difference / se;
  df := se ^ 4 / ((variance_a / n_a) ^ 2 / (n_a - 1) + (variance_b / n_b) ^ 2 / (n_b - 1));
  p_value := mad.student_t_p(t, df);
  FOR i IN 1..100 LOOP  -- the t with a two-sided p of 0.05
    mid := (low + high) / 2;
    IF mad.student_t_p(mid, df) > 0.05 THEN low := mid; ELSE high := mid; END IF;
    EXIT WHEN high - low < 1e-12;
  END LOOP;
  ci_low := difference - (low + high) / 2 * se;
  ci_high := difference + (low + high) / 2 * se;
END
$$;

-- Champion against canary of model@alias, per prediction table served through it that has outcomes bound, over
-- everything served (one window). Runs as its caller: the predictions and the labels are read with the caller's own
-- rights (mad.outcome_metrics). One row per arm; the canary's row carries the difference (canary − champion), its
-- test and the sample-ratio check against the deployment's current percent.
CREATE FUNCTION mad.compare(model text, alias text, metric text DEFAULT NULL, horizon bigint DEFAULT 1000)
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

  FOR binding IN SELECT p.name FROM mad.prediction_tables p JOIN mad.outcomes o ON o.prediction_table = p.name
                 WHERE split_part(p.model, '@', 1) = compare.model
                   AND CASE WHEN position('@' IN p.model) = 0 THEN compare.alias = 'production' ELSE split_part(p.model, '@', 2) = compare.alias END
                 ORDER BY p.name LOOP
    found_any := true;
    has_a := false; has_b := false; chosen := NULL;
    -- One window over everything served: 100,000 days from 2000-01-03.
    FOR r IN SELECT * FROM mad.outcome_metrics(binding.name, interval '100000 days') m
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
  IF NOT found_any THEN
    RAISE NOTICE 'No prediction table served through %@% has outcomes bound: nothing to compare.', compare.model, compare.alias;
  END IF;
END
$$;

REVOKE ALL ON FUNCTION mad.incomplete_beta(double precision, double precision, double precision), mad.student_t_p(double precision, double precision),
  mad.welch_test(double precision, double precision, bigint, double precision, double precision, bigint), mad.compare(text, text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.incomplete_beta(double precision, double precision, double precision), mad.student_t_p(double precision, double precision),
  mad.welch_test(double precision, double precision, bigint, double precision, double precision, bigint), mad.compare(text, text, text, bigint)
  TO mad_admin, mad_user;
