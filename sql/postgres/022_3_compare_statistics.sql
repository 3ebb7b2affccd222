-- The statistics mad.compare will report per pair of arms (issue 17; mad.compare itself is not built yet). Sums in,
-- numbers out, as GrowthBook computes them from warehouse aggregates. p-values through mad.gamma_q (018):
-- a two-sided normal p for z is Q(1/2, z²/2), a chi-squared p on 1 degree of freedom for x is Q(1/2, x/2).

-- Two-proportion z-test of arm b's rate against arm a's: the difference b − a with a 95 % interval (unpooled
-- standard error), z with the pooled standard error, and the two-sided p-value.
CREATE FUNCTION mad.proportion_test(x_a bigint, n_a bigint, x_b bigint, n_b bigint,
  OUT difference double precision, OUT ci_low double precision, OUT ci_high double precision, OUT z double precision, OUT p_value double precision)
LANGUAGE plpgsql IMMUTABLE SET search_path = mad, pg_temp AS $$
DECLARE
  p_a double precision := x_a::double precision / nullif(n_a, 0);
  p_b double precision := x_b::double precision / nullif(n_b, 0);
  pooled double precision := (x_a + x_b)::double precision / nullif(n_a + n_b, 0);
  se double precision;
BEGIN
  difference := p_b - p_a;
  se := sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b);
  ci_low := difference - 1.959963984540054 * se;
  ci_high := difference + 1.959963984540054 * se;
  z := difference / nullif(sqrt(pooled * (1 - pooled) * (1.0 / n_a + 1.0 / n_b)), 0);
  p_value := CASE WHEN z IS NOT NULL THEN mad.gamma_q(0.5, z * z / 2) END;
END
$$;

-- Sample-ratio mismatch: counts of the champion and the canary against the canary's deployed percent; chi-squared on
-- one degree of freedom, flagged below p = 0.001 (a broken split, not chance: the comparison is not to be trusted).
CREATE FUNCTION mad.sample_ratio_check(n_champion bigint, n_canary bigint, percent double precision,
  OUT chi_square double precision, OUT p_value double precision, OUT mismatch boolean)
LANGUAGE plpgsql IMMUTABLE SET search_path = mad, pg_temp AS $$
DECLARE
  total double precision := n_champion + n_canary;
  expected_canary double precision := total * percent / 100;
  expected_champion double precision := total - total * percent / 100;
BEGIN
  IF percent IS NULL OR percent <= 0 OR percent >= 100 OR total = 0 THEN
    RETURN; -- no split to check
  END IF;
  chi_square := (n_canary - expected_canary) ^ 2 / expected_canary + (n_champion - expected_champion) ^ 2 / expected_champion;
  p_value := mad.gamma_q(0.5, chi_square / 2);
  mismatch := p_value < 0.001;
END
$$;

REVOKE ALL ON FUNCTION mad.proportion_test(bigint, bigint, bigint, bigint), mad.sample_ratio_check(bigint, bigint, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.proportion_test(bigint, bigint, bigint, bigint), mad.sample_ratio_check(bigint, bigint, double precision) TO mad_admin, mad_user;
