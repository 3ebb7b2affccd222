-- Drift monitoring (issue 16): the chi2_p of numeric columns no longer rejects a window with no drift for one value
-- outside the baseline's range. Checked by simulation under the null (tests/ModelAsData.Tests/Monitoring/
-- DriftNullRejectionTests, docs/MONITORING.md "p-values under no drift"): a baseline of n_b rows fitted on its own
-- quantiles leaves its under- and overflow bins empty by construction, since its min and max are its outer edges.
-- A current row outside that range lands in a bin whose expected count is n_b / (n_b + n_c) × 1 row, and one such row
-- adds about n_b / n_c to the statistic. At alpha 0.01 unshifted continuous windows were rejected 2.2 % of the time
-- at 600 rows and 9.5 % at 100. Now an outer bin that the baseline left empty is pooled with its inner neighbour,
-- for chi2 only. A window that moves mass past the range still raises that neighbour, and ks, wasserstein and psi
-- still see the outer bin itself. A bin with baseline rows (edges given by the user) is kept. ks_p was checked too:
-- the binned KS is conservative (0.3 % at 0.01), as a KS on fewer points must be, and is unchanged.
-- 018's mad.drift_metric_values, the lines marked 049_2 changed; DriftEvaluator (C#) makes the same change.
CREATE OR REPLACE FUNCTION mad.drift_metric_values(type text, b bigint[], b_null bigint, c bigint[], c_null bigint,
                                        positions double precision[], spread double precision)
RETURNS TABLE (metric text, value double precision, threshold double precision, drifted boolean)
LANGUAGE plpgsql IMMUTABLE ROWS 7 SET search_path = mad, pg_temp AS $$
DECLARE
  nbins int := cardinality(b);
  pb double precision[] := b || b_null;
  pc double precision[] := c || c_null;
  nb double precision := 0;
  nc double precision := 0;
  nb_values double precision;
  nc_values double precision;
  scale double precision;
  value_scale double precision;
  non_empty int := 0;
  p double precision;
  q double precision;
  m double precision;
  pe double precision;
  qe double precision;
  fp double precision := 0;
  fq double precision := 0;
  psi double precision := 0;
  psi_threshold double precision;
  jsd double precision := 0;
  w double precision := 0;
  ks double precision := 0;
  ks_threshold double precision;
  ks_pvalue double precision;
  linf double precision := 0;
  chi2 double precision := 0;
  eb double precision;
  ec double precision;
  chi2_p double precision;
  xb double precision[]; -- 049_2: the counts the chi-square test compares, outer bins the baseline left empty pooled inward
  xc double precision[];
  chi2_bins int := 0;
BEGIN
  IF cardinality(c) IS DISTINCT FROM nbins THEN
    RAISE EXCEPTION '% baseline bins against % current ones.', nbins, cardinality(c) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 1..nbins + 1 LOOP
    nb := nb + pb[i];
    nc := nc + pc[i];
    IF pb[i] + pc[i] > 0 THEN non_empty := non_empty + 1; END IF;
  END LOOP;
  IF nb <= 0 OR nc <= 0 THEN
    RETURN QUERY SELECT x, NULL::float8, NULL::float8, false
      FROM unnest(CASE WHEN type = 'numeric' THEN ARRAY['psi', 'js', 'wasserstein', 'ks', 'ks_p', 'chi2_p'] ELSE ARRAY['psi', 'js', 'linf', 'chi2_p'] END) x;
    RETURN;
  END IF;
  nb_values := nb - b_null;
  nc_values := nc - c_null;
  scale := 1 / nb + 1 / nc;
  -- 049_2: a numeric baseline fitted on its own quantiles has its under- and overflow bins empty by construction (its
  -- min and max are its outer edges), so a current value outside its range met an expected count near 0 and one row
  -- made chi2 explode (2.2 % of unshifted windows rejected at 0.01 for 600 rows, 9.5 % for 100). Such a bin is
  -- pooled with its inner neighbour for the chi-square test only; psi, js, ks and wasserstein still see it.
  xb := pb;
  xc := pc;
  IF type = 'numeric' AND nbins >= 3 THEN
    IF pb[1] = 0 THEN xb[2] := xb[2] + xb[1]; xc[2] := xc[2] + xc[1]; xb[1] := 0; xc[1] := 0; END IF;
    IF pb[nbins] = 0 THEN xb[nbins - 1] := xb[nbins - 1] + xb[nbins]; xc[nbins - 1] := xc[nbins - 1] + xc[nbins]; xb[nbins] := 0; xc[nbins] := 0; END IF;
  END IF;

  FOR i IN 1..nbins + 1 LOOP
    p := pb[i] / nb;
    q := pc[i] / nc;
    pe := CASE WHEN p > 0 THEN p ELSE 1e-4 END;
    qe := CASE WHEN q > 0 THEN q ELSE 1e-4 END;
    psi := psi + (qe - pe) * ln(qe / pe);
    m := (p + q) / 2;
    IF p > 0 THEN jsd := jsd + p * (ln(p / m) / ln(2.0::float8)) / 2; END IF;
    IF q > 0 THEN jsd := jsd + q * (ln(q / m) / ln(2.0::float8)) / 2; END IF;
    linf := greatest(linf, abs(p - q));
    IF xb[i] + xc[i] > 0 THEN -- 049_2
      chi2_bins := chi2_bins + 1;
      eb := nb * (xb[i] + xc[i]) / (nb + nc);
      ec := nc * (xb[i] + xc[i]) / (nb + nc);
      chi2 := chi2 + (xb[i] - eb) ^ 2 / eb + (xc[i] - ec) ^ 2 / ec;
    END IF;
  END LOOP;
  psi_threshold := greatest(0.1, mad.chi_square_99(non_empty - 1) * scale);
  chi2_p := CASE WHEN chi2_bins < 2 THEN 1 ELSE mad.gamma_q((chi2_bins - 1) / 2.0, chi2 / 2) END; -- 049_2

  metric := 'psi'; value := psi; threshold := psi_threshold; drifted := value > threshold; RETURN NEXT;
  metric := 'js'; value := sqrt(greatest(jsd, 0)); threshold := sqrt(psi_threshold / (8 * ln(2))); drifted := value > threshold; RETURN NEXT;
  IF type = 'numeric' THEN
    IF nb_values > 0 AND nc_values > 0 THEN
      value_scale := 1 / nb_values + 1 / nc_values;
      FOR i IN 1..nbins LOOP
        fp := fp + b[i] / nb_values;
        fq := fq + c[i] / nc_values;
        ks := greatest(ks, abs(fp - fq));
        IF i < nbins THEN w := w + abs(fp - fq) * (positions[i + 1] - positions[i]); END IF;
      END LOOP;
      ks_threshold := greatest(0.1, 1.6276236307187293 * sqrt(value_scale));
      ks_pvalue := mad.ks_p(ks, nb_values, nc_values);
      metric := 'wasserstein'; value := w / CASE WHEN spread > 0 THEN spread ELSE 1 END; threshold := ks_threshold; drifted := value > threshold; RETURN NEXT;
      metric := 'ks'; value := ks; threshold := ks_threshold; drifted := value > threshold; RETURN NEXT;
      metric := 'ks_p'; value := ks_pvalue; threshold := 0.01; drifted := ks_pvalue < 0.01 AND ks > ks_threshold; RETURN NEXT;
    ELSE
      RETURN QUERY SELECT x, NULL::float8, NULL::float8, false FROM unnest(ARRAY['wasserstein', 'ks', 'ks_p']) x;
    END IF;
  ELSE
    metric := 'linf'; value := linf; threshold := greatest(0.1, 1.2879146517744502 * sqrt(scale)); drifted := value > threshold; RETURN NEXT;
  END IF;
  metric := 'chi2_p'; value := chi2_p; threshold := 0.01; drifted := chi2_p < 0.01 AND psi > psi_threshold; RETURN NEXT;
END
$$;
