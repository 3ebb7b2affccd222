-- Drift monitoring (issue 16): a baseline profile stored with each version, profile counts added as rows are scored,
-- and mad.drift computing the metrics from the counts, so drift never rescans a source table.
--
-- Baselines (mad.baselines): per version, per mapped source column (kind 'input') and per decoded output ('output'),
-- the bins and the baseline's counts in them. Numbers: edges e1 < ... < em at the baseline's quantiles 0, 1/bins, ...,
-- 1 (percentile_disc; repeated edges dropped) or the edges given; bin 0 holds x < e1 (underflow), bin i holds
-- e(i) <= x < e(i+1), the last inner bin also holds x = em, bin m holds x > em (overflow): width_bucket with the
-- top edge closed (mad.bin_of). Text, booleans (as '1'/'0') and whole numbers with at most 20 distinct values are
-- categories: the 20 most frequent (ties by text in "C" order), then 'other'. Nulls are counted apart (null_count;
-- bin -1 in the counts). ModelAsData.Core.Monitoring.ProfileBuilder follows the same rules for the embedded store
-- and for outputs, which only scoring can profile: mad.set_baseline profiles the inputs here, reading the source
-- with the caller's rights (SECURITY INVOKER); `mad monitor baseline` also scores the rows as the caller and stores
-- the outputs' profile with mad.store_baseline. A version without a baseline is not counted.
--
-- Profile counts (mad.profile_counts): rows counted into their version's baseline bins as a door scores them, per
-- prediction table, version, hour, column and bin, added (ON CONFLICT ... count + excluded.count) by the sidecar in
-- the transaction that writes the predictions; windows of any whole number of hours merge by addition.
--
-- Metrics (mad.drift_metric_values, the same formulas as ModelAsData.Core.Monitoring.DriftMetrics and
-- DriftEvaluator; the contract tests hold the two equal): psi (a share of 0 takes 1e-4), js (Jensen-Shannon distance,
-- base 2), wasserstein (W1 over bin positions, divided by the baseline's standard deviation), ks and ks_p (binned
-- two-sample KS and its asymptotic p-value), linf (largest share gap, categories), chi2_p (Pearson's chi-squared
-- p-value). Thresholds grow for small samples; docs/MONITORING.md says which and why.
--
-- Who sees what: baselines hold quantiles of the source they came from, so only mad_admin and mad_sidecar read
-- mad.baselines; mad.drift (metrics only) answers a prediction table's owner and mad_admin; mad.drift_histograms shows
-- the baseline's bins only to roles that may read the baseline's source.

CREATE TABLE mad.baselines (
  model text NOT NULL,
  version int NOT NULL,
  kind text NOT NULL CHECK (kind IN ('input', 'output')),
  column_name text NOT NULL,
  type text NOT NULL CHECK (type IN ('numeric', 'category')),
  edges double precision[],
  categories text[],
  counts bigint[] NOT NULL,
  null_count bigint NOT NULL CHECK (null_count >= 0),
  spread double precision NOT NULL DEFAULT 0,
  source text NOT NULL,
  created_by text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (model, version, kind, column_name),
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version),
  CONSTRAINT baselines_bins CHECK (
    (type = 'numeric' AND cardinality(edges) >= 1 AND cardinality(counts) = cardinality(edges) + 1)
    OR (type = 'category' AND categories IS NOT NULL AND cardinality(counts) = cardinality(categories) + 1))
);

CREATE TABLE mad.profile_counts (
  prediction_table text NOT NULL,
  version int NOT NULL,
  window_start timestamptz NOT NULL CHECK (window_start = date_trunc('hour', window_start)),
  kind text NOT NULL CHECK (kind IN ('input', 'output')),
  column_name text NOT NULL,
  bin int NOT NULL CHECK (bin >= -1),
  count bigint NOT NULL CHECK (count >= 0),
  PRIMARY KEY (prediction_table, window_start, version, kind, column_name, bin)
);

-- The math: the incomplete gamma function of Numerical Recipes (2nd ed., 6.1-6.2), step for step as
-- ModelAsData.Core.Monitoring.Gamma.

CREATE FUNCTION mad.log_gamma(x double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
DECLARE
  c double precision[] := ARRAY[76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
  y double precision := x;
  tmp double precision := x + 5.5;
  series double precision := 1.000000000190015;
BEGIN
  tmp := tmp - (x + 0.5) * ln(tmp);
  FOR j IN 1..6 LOOP
    y := y + 1;
    series := series + c[j] / y;
  END LOOP;
  RETURN -tmp + ln(2.5066282746310005 * series / x);
END
$$;

-- Q(a, x), the upper regularized incomplete gamma function: the p-value of chi-squared x*2 on a*2 degrees of freedom.
CREATE FUNCTION mad.gamma_q(a double precision, x double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
DECLARE
  gln double precision;
  ap double precision;
  del double precision;
  total double precision;
  b double precision;
  c double precision;
  d double precision;
  h double precision;
  an double precision;
  tiny constant double precision := 1e-300;
BEGIN
  IF x <= 0 THEN
    RETURN 1;
  END IF;
  gln := mad.log_gamma(a);
  IF x < a + 1 THEN
    ap := a;
    del := 1.0 / a;
    total := del;
    FOR n IN 1..500 LOOP
      ap := ap + 1;
      del := del * x / ap;
      total := total + del;
      EXIT WHEN abs(del) < abs(total) * 3e-16;
    END LOOP;
    -- PostgreSQL raises on an exp() that underflows where C# gives 0: below e^-700 the term is 0.
    RETURN greatest(0, least(1, 1 - CASE WHEN -x + a * ln(x) - gln + ln(total) < -700 THEN 0 ELSE exp(-x + a * ln(x) - gln + ln(total)) END));
  END IF;
  b := x + 1 - a;
  c := 1 / tiny;
  d := 1 / b;
  h := d;
  FOR i IN 1..500 LOOP
    an := -i * (i - a);
    b := b + 2;
    d := an * d + b;
    IF abs(d) < tiny THEN d := tiny; END IF;
    c := b + an / c;
    IF abs(c) < tiny THEN c := tiny; END IF;
    d := 1 / d;
    del := d * c;
    h := h * del;
    EXIT WHEN abs(del - 1) < 3e-16;
  END LOOP;
  RETURN greatest(0, least(1, CASE WHEN h <= 0 OR -x + a * ln(x) - gln + ln(h) < -700 THEN 0 ELSE exp(-x + a * ln(x) - gln + ln(h)) END));
END
$$;

-- The 99th percentile of chi-squared on df degrees of freedom (Wilson-Hilferty).
CREATE FUNCTION mad.chi_square_99(df double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
  SELECT k * t * t * t
  FROM (SELECT greatest(df, 1) AS k) s
  CROSS JOIN LATERAL (SELECT 1 - 2 / (9 * s.k) + 2.3263478740408408 * sqrt(2 / (9 * s.k)) AS t) u;
$$;

-- The asymptotic p-value of a KS distance d between samples of n1 and n2 rows (Stephens' correction).
CREATE FUNCTION mad.ks_p(d double precision, n1 double precision, n2 double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
DECLARE
  ne double precision := sqrt(n1 * n2 / (n1 + n2));
  lambda double precision;
  a2 double precision;
  fac double precision := 2;
  total double precision := 0;
  before double precision := 0;
  term double precision;
BEGIN
  lambda := (ne + 0.12 + 0.11 / ne) * d;
  a2 := -2 * lambda * lambda;
  FOR j IN 1..100 LOOP
    -- exp underflows to an error in PostgreSQL where C# gives 0
    term := CASE WHEN a2 * j * j < -700 THEN 0 ELSE fac * exp(a2 * j * j) END;
    total := total + term;
    IF abs(term) <= 0.001 * before OR abs(term) <= 1e-8 * total THEN
      RETURN greatest(0, least(1, total));
    END IF;
    fac := -fac;
    before := abs(term);
  END LOOP;
  RETURN 1;
END
$$;

-- The bin of x among rising edges: the number of edges <= x (width_bucket), the top edge closed into the last inner
-- bin; -1 for null.
CREATE FUNCTION mad.bin_of(x double precision, edges double precision[]) RETURNS int
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE
    WHEN x IS NULL OR x = 'NaN'::float8 THEN -1
    WHEN cardinality(edges) > 1 AND x = edges[cardinality(edges)] THEN cardinality(edges) - 1
    ELSE width_bucket(x, edges) END;
$$;

-- Where each numeric bin sits for Wasserstein: under- and overflow at the outer edges, inner bins at their middles.
CREATE FUNCTION mad.bin_positions(edges double precision[]) RETURNS double precision[]
LANGUAGE sql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
  SELECT edges[1:1]
      || coalesce(ARRAY(SELECT (edges[i - 1] + edges[i]) / 2 FROM generate_series(2, cardinality(edges)) i ORDER BY i), '{}')
      || edges[cardinality(edges):cardinality(edges)];
$$;

-- A bin's label, as the report shows it: '< 3', '[3, 12)', '[12, 24]', '> 24', a category, 'other' or 'null'.
CREATE FUNCTION mad.bin_label(type text, edges double precision[], categories text[], bin int) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE
    WHEN bin = -1 THEN 'null'
    WHEN type = 'category' THEN coalesce(categories[bin + 1], 'other')
    WHEN bin = 0 THEN '< ' || edges[1]
    WHEN bin = cardinality(edges) THEN '> ' || edges[cardinality(edges)]
    WHEN bin = cardinality(edges) - 1 THEN format('[%s, %s]', edges[bin], edges[bin + 1])
    ELSE format('[%s, %s)', edges[bin], edges[bin + 1]) END;
$$;

-- The metrics of one column: a baseline's counts (b, nulls b_null) against a window's (c, c_null) over the same
-- bins, as ModelAsData.Core.Monitoring.DriftEvaluator.Evaluate computes them. Nulls are a bin of their own in psi, js,
-- linf and chi2_p; wasserstein and ks compare the non-null values. A window without rows: every metric without a
-- value, never drifted.
CREATE FUNCTION mad.drift_metric_values(type text, b bigint[], b_null bigint, c bigint[], c_null bigint,
                                        positions double precision[], spread double precision)
RETURNS TABLE (metric text, value double precision, threshold double precision, drifted boolean)
LANGUAGE plpgsql IMMUTABLE SET search_path = mad, pg_temp AS $$
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
    IF pb[i] + pc[i] > 0 THEN
      eb := nb * (pb[i] + pc[i]) / (nb + nc);
      ec := nc * (pb[i] + pc[i]) / (nb + nc);
      chi2 := chi2 + (pb[i] - eb) ^ 2 / eb + (pc[i] - ec) ^ 2 / ec;
    END IF;
  END LOOP;
  psi_threshold := greatest(0.1, mad.chi_square_99(non_empty - 1) * scale);
  chi2_p := CASE WHEN non_empty < 2 THEN 1 ELSE mad.gamma_q((non_empty - 1) / 2.0, chi2 / 2) END;

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

-- Baselines

-- The source columns a version's baseline profiles, and how each is read ('number', 'whole', 'boolean' or 'text'):
-- the feature columns of the prediction tables bound to the model, else the model's inputs mapped as
-- mad.create_prediction_table maps them (metadata "features", else by name). Refuses a source without one of them,
-- or one the caller may not read, naming what is missing. Reads the catalog only.
CREATE FUNCTION mad.baseline_columns(model_name text, model_version int, source regclass)
RETURNS TABLE (column_name text, read_as text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  signature jsonb;
  wanted text[];
  missing text;
  denied text;
BEGIN
  PERFORM mad.require_role('mad_admin', 'set a baseline');
  signature := mad.ready_signature(model_name, model_version);
  wanted := ARRAY(SELECT DISTINCT f FROM mad.prediction_tables p CROSS JOIN LATERAL unnest(p.feature_columns) f
                  WHERE split_part(p.model, '@', 1) = model_name ORDER BY f);
  IF cardinality(wanted) = 0 THEN
    wanted := ARRAY(SELECT DISTINCT s FROM jsonb_array_elements_text(mad.map_features(source, model_name, signature, NULL) -> 'slots') s ORDER BY s);
  END IF;
  SELECT string_agg(quote_ident(w), ', ' ORDER BY w) INTO missing FROM unnest(wanted) w WHERE NOT EXISTS (SELECT FROM mad.find_column(source, w));
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'The baseline % has no column % that model %@% reads (its prediction tables map it from %). Columns: %.',
      source, missing, model_name, model_version, array_to_string(wanted, ', '), mad.describe_columns(source)
      USING ERRCODE = 'undefined_column', HINT = 'Give a table or view with those columns, e.g. a view that renames them.';
  END IF;
  SELECT string_agg(quote_ident(f.name), ', ') INTO denied FROM unnest(wanted) w CROSS JOIN LATERAL mad.find_column(source, w) f
  WHERE NOT pg_catalog.has_column_privilege(mad.caller_role(), source, f.name, 'SELECT');
  IF denied IS NOT NULL THEN
    RAISE EXCEPTION 'permission denied to set a baseline: role % may not SELECT % of %', quote_ident(mad.caller_role()), denied, source
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The owner of the table can run: GRANT SELECT ON %s TO %I;', source, mad.caller_role());
  END IF;
  RETURN QUERY
  SELECT f.name, CASE
    WHEN f.type = 'boolean'::regtype THEN 'boolean'
    WHEN f.type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN 'whole'
    WHEN f.type IN ('real'::regtype, 'double precision'::regtype, 'numeric'::regtype) THEN 'number'
    ELSE 'text' END
  FROM unnest(wanted) w CROSS JOIN LATERAL mad.find_column(source, w) f;
END
$$;

-- Stores a version's profiles of one kind (replacing that kind's baseline; the counts made in the old bins are
-- deleted, as they no longer fit). profiles: a JSON array of {column, type, edges | categories, counts, null_count,
-- spread}, checked here. Called by mad.set_baseline (inputs) and `mad monitor baseline` (outputs, which it scores).
CREATE FUNCTION mad.store_baseline(model_name text, model_version int, source text, kind text, profiles jsonb) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  profile jsonb;
  edges float8[];
  counts bigint[];
  dropped bigint;
BEGIN
  PERFORM mad.require_role('mad_admin', 'set a baseline');
  PERFORM mad.ready_signature(model_name, model_version);
  IF kind IS NULL OR kind NOT IN ('input', 'output') THEN
    RAISE EXCEPTION 'A baseline''s kind is ''input'' or ''output''; got %.', coalesce(quote_literal(kind), 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF profiles IS NULL OR jsonb_typeof(profiles) <> 'array' OR jsonb_array_length(profiles) = 0 THEN
    RAISE EXCEPTION 'A baseline needs at least one column profile; got %.', coalesce(profiles::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR profile IN SELECT value FROM jsonb_array_elements(profiles) LOOP
    counts := ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(profile -> 'counts') x);
    IF profile ->> 'type' = 'numeric' THEN
      edges := ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(profile -> 'edges') WITH ORDINALITY e(x, n) ORDER BY n);
      IF EXISTS (SELECT FROM generate_series(2, cardinality(edges)) i WHERE NOT edges[i] > edges[i - 1]) THEN
        RAISE EXCEPTION 'The bins of column % must rise; got %.', quote_literal(profile ->> 'column'), profile -> 'edges' USING ERRCODE = 'invalid_parameter_value';
      END IF;
    END IF;
    IF EXISTS (SELECT FROM unnest(counts) c WHERE c < 0) OR coalesce((profile ->> 'null_count')::bigint, -1) < 0 THEN
      RAISE EXCEPTION 'The counts of column % must be whole numbers >= 0; got %.', quote_literal(profile ->> 'column'), profile -> 'counts' USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;

  DELETE FROM mad.baselines b WHERE b.model = model_name AND b.version = model_version AND b.kind = store_baseline.kind;
  DELETE FROM mad.profile_counts c USING mad.prediction_tables p
  WHERE c.prediction_table = p.name AND split_part(p.model, '@', 1) = model_name AND c.version = model_version AND c.kind = store_baseline.kind;
  GET DIAGNOSTICS dropped = ROW_COUNT;
  IF dropped > 0 THEN
    RAISE NOTICE 'The % profile counts of %@% were counted into the bins of the baseline it replaces, so they were deleted.', kind, model_name, model_version;
  END IF;
  INSERT INTO mad.baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source)
  SELECT model_name, model_version, store_baseline.kind, p ->> 'column', p ->> 'type',
         CASE WHEN p ->> 'type' = 'numeric' THEN ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(p -> 'edges') WITH ORDINALITY e(x, n) ORDER BY n) END,
         CASE WHEN p ->> 'type' = 'category' THEN ARRAY(SELECT x FROM jsonb_array_elements_text(p -> 'categories') WITH ORDINALITY e(x, n) ORDER BY n) END,
         ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p -> 'counts') WITH ORDINALITY e(x, n) ORDER BY n),
         (p ->> 'null_count')::bigint, coalesce((p ->> 'spread')::float8, 0), source
  FROM jsonb_array_elements(profiles) p;
  RETURN jsonb_array_length(profiles);
END
$$;

-- The baseline of a version's inputs, from any table or view the caller may read, read with the caller's rights
-- (SECURITY INVOKER: grants, column privileges and row security apply as to the caller's own SELECT). bins gives
-- edges for numeric columns ({"tenure": [3, 12, 24]}); the others get 10 quantile bins. Returns how many columns it
-- profiled. The outputs' profile needs scoring: `mad monitor baseline` adds it.
CREATE FUNCTION mad.set_baseline(model text, version int, source regclass, bins jsonb DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY INVOKER SET search_path = mad, pg_temp AS $$
DECLARE
  col record;
  given float8[];
  fractions float8[] := ARRAY(SELECT i::float8 / 10 FROM generate_series(0, 10) i ORDER BY i);
  total bigint;
  stats record;
  edges float8[];
  counts bigint[];
  top record;
  expression text;
  profiles jsonb := '[]';
  columns text[] := '{}';
  unknown text;
  source_name text;
BEGIN
  IF bins IS NOT NULL AND jsonb_typeof(bins) <> 'object' THEN
    RAISE EXCEPTION 'Bins must be a JSON object such as {"tenure": [3, 12, 24]}; got %.', bins USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT format('%I.%I', n.nspname, c.relname) INTO source_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source;
  FOR col IN SELECT * FROM mad.baseline_columns(model, version, source) LOOP
    columns := columns || col.column_name;
    IF total IS NULL THEN
      EXECUTE format('SELECT count(*) FROM %s', source) INTO total;
      IF total = 0 THEN
        RAISE EXCEPTION 'The baseline % has no rows: give a table or view with the rows the version was trained or validated on.', source
          USING ERRCODE = 'no_data_found';
      END IF;
    END IF;
    expression := CASE col.read_as WHEN 'boolean' THEN format('CASE WHEN %I THEN 1::float8 WHEN NOT %I THEN 0::float8 END', col.column_name, col.column_name)
                                   WHEN 'text' THEN format('%I::text', col.column_name)
                                   ELSE format('%I::float8', col.column_name) END;
    given := NULL;
    IF bins ? col.column_name THEN
      IF jsonb_typeof(bins -> col.column_name) <> 'array' OR jsonb_array_length(bins -> col.column_name) = 0
         OR EXISTS (SELECT FROM jsonb_array_elements(bins -> col.column_name) e WHERE jsonb_typeof(e) <> 'number') THEN
        RAISE EXCEPTION 'The bins of column % must be a list of numbers such as [3, 12, 24]; got %.', quote_literal(col.column_name), bins -> col.column_name
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      given := ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(bins -> col.column_name) WITH ORDINALITY e(x, n) ORDER BY n);
      FOR i IN 2..cardinality(given) LOOP
        IF NOT given[i] > given[i - 1] THEN
          RAISE EXCEPTION 'The bins of column % must rise: % is followed by %.', quote_literal(col.column_name), given[i - 1], given[i]
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
      END LOOP;
      IF col.read_as IN ('text', 'boolean') THEN
        RAISE EXCEPTION 'Column % holds categories; bin edges apply to numeric columns only.', quote_literal(col.column_name) USING ERRCODE = 'invalid_parameter_value';
      END IF;
    END IF;

    EXECUTE format('SELECT count(x) AS present, count(DISTINCT x) AS distinct_values, stddev_pop(%s) AS spread FROM (SELECT %s AS x FROM %s) s',
                   CASE WHEN col.read_as = 'text' THEN 'NULL::float8' ELSE 'x' END, expression, source) INTO stats;
    IF stats.present = 0 THEN
      RAISE EXCEPTION 'Column % is null in all % baseline rows, so it has no distribution to compare with: fill it, or map the input to another column.',
        quote_literal(col.column_name), total USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF col.read_as IN ('text', 'boolean') OR (col.read_as = 'whole' AND given IS NULL AND stats.distinct_values <= 20) THEN
      -- Categories: the 20 most frequent, then 'other'.
      EXECUTE format($q$
        SELECT coalesce(array_agg(v ORDER BY r) FILTER (WHERE r <= 20), '{}') AS categories,
               array_agg(n ORDER BY r) FILTER (WHERE r <= 20) || coalesce(sum(n) FILTER (WHERE r > 20), 0)::bigint AS counts
        FROM (SELECT v, n, row_number() OVER (ORDER BY n DESC, v COLLATE "C") AS r
              FROM (SELECT %s AS v, count(*) AS n FROM (SELECT %s AS x FROM %s) s WHERE x IS NOT NULL GROUP BY 1) g) t$q$,
        CASE WHEN col.read_as = 'text' THEN 'x' ELSE 'x::bigint::text' END, expression, source) INTO top;
      profiles := profiles || jsonb_build_object('column', col.column_name, 'type', 'category', 'categories', to_jsonb(top.categories),
                                                 'counts', to_jsonb(top.counts), 'null_count', total - stats.present, 'spread', 0);
    ELSE
      IF given IS NULL THEN
        EXECUTE format('SELECT percentile_disc(%L::float8[]) WITHIN GROUP (ORDER BY x) FROM (SELECT %s AS x FROM %s) s', fractions, expression, source) INTO edges;
        edges := ARRAY(SELECT DISTINCT e FROM unnest(edges) e ORDER BY e);
      ELSE
        edges := given;
      END IF;
      EXECUTE format($q$
        SELECT array_agg(coalesce(g.n, 0) ORDER BY i)
        FROM generate_series(0, %s) i
        LEFT JOIN (SELECT mad.bin_of(x, %L::float8[]) AS b, count(*) AS n FROM (SELECT %s AS x FROM %s) s WHERE x IS NOT NULL GROUP BY 1) g ON g.b = i$q$,
        cardinality(edges), edges, expression, source) INTO counts;
      profiles := profiles || jsonb_build_object('column', col.column_name, 'type', 'numeric', 'edges', to_jsonb(edges),
                                                 'counts', to_jsonb(counts), 'null_count', total - stats.present, 'spread', coalesce(stats.spread, 0));
    END IF;
  END LOOP;

  SELECT string_agg(quote_literal(k), ', ') INTO unknown FROM jsonb_object_keys(coalesce(bins, '{}')) k WHERE k <> ALL (columns);
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION 'The bins name %, which the baseline does not profile; its columns: %.', unknown, array_to_string(columns, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN mad.store_baseline(model, version, source_name, 'input', profiles);
END
$$;

-- Counting

-- Adds a door's counts of one version's rows scored in one hour of one prediction table (the sidecar, in the
-- transaction that writes the rows). In key order, so two doors adding to the same bins wait rather than deadlock.
CREATE FUNCTION mad.add_profile_counts(table_name text, version int, scored_at timestamptz, kinds text[], columns text[], bins int[], counts bigint[])
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  INSERT INTO mad.profile_counts AS p (prediction_table, version, window_start, kind, column_name, bin, count)
  SELECT table_name, version, date_trunc('hour', scored_at), u.kind, u.column_name, u.bin, u.count
  FROM unnest(kinds, columns, bins, counts) u(kind, column_name, bin, count)
  ORDER BY u.kind, u.column_name, u.bin
  ON CONFLICT (prediction_table, window_start, version, kind, column_name, bin) DO UPDATE SET count = p.count + excluded.count;
$$;

-- Drift

-- The windows a drift query covers: from since (truncated to the hour; default: one window ending with the current
-- hour) to now, each "window" long (a whole number of hours, as counts are hourly).
CREATE FUNCTION mad.drift_windows(since timestamptz, "window" interval) RETURNS TABLE (window_start timestamptz, window_end timestamptz)
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  first timestamptz;
BEGIN
  IF "window" IS NULL OR "window" < interval '1 hour' OR extract(epoch FROM "window")::numeric % 3600 <> 0 THEN
    RAISE EXCEPTION 'A drift window is a whole number of hours (''1 hour'', ''1 day''); got %.', coalesce("window"::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Profile counts are kept per hour, so windows are made of hours.';
  END IF;
  first := date_trunc('hour', coalesce(since, date_trunc('hour', now()) + interval '1 hour' - "window"));
  RETURN QUERY SELECT w, w + "window" FROM generate_series(first, now(), "window") w;
END
$$;

-- Per window, version and profiled column: the baseline's and the window's counts, as arrays over the bins.
CREATE FUNCTION mad.drift_counts(binding mad.prediction_tables, since timestamptz, "window" interval)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, kind text, column_name text, type text,
               edges double precision[], categories text[], source text, baseline bigint[], baseline_null bigint, spread double precision,
               current bigint[], current_null bigint)
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  WITH windows AS (SELECT * FROM mad.drift_windows(since, "window")),
  counted AS (
    SELECT w.window_start, c.version, c.kind, c.column_name, c.bin, sum(c.count)::bigint AS n
    FROM mad.profile_counts c JOIN windows w ON c.window_start >= w.window_start AND c.window_start < w.window_end
    WHERE c.prediction_table = binding.name
    GROUP BY 1, 2, 3, 4, 5),
  versions AS (
    SELECT DISTINCT c.version FROM counted c
    -- No rows counted in the range: the version last refreshed, else the newest with a baseline, gets its n_current = 0 rows.
    UNION SELECT coalesce(binding.refreshed_version, (SELECT max(b.version) FROM mad.baselines b WHERE b.model = split_part(binding.model, '@', 1)))
    WHERE NOT EXISTS (SELECT FROM counted)),
  grid AS (
    SELECT w.window_start, w.window_end, b.version, b.kind, b.column_name, i AS bin
    FROM windows w
    CROSS JOIN mad.baselines b
    CROSS JOIN LATERAL generate_series(-1, cardinality(b.counts) - 1) i
    WHERE b.model = split_part(binding.model, '@', 1) AND b.version IN (SELECT v.version FROM versions v)),
  current AS (
    SELECT g.window_start, g.window_end, g.version, g.kind, g.column_name,
           array_agg(coalesce(c.n, 0) ORDER BY g.bin) FILTER (WHERE g.bin >= 0) AS current,
           coalesce(sum(c.n) FILTER (WHERE g.bin = -1), 0)::bigint AS current_null
    FROM grid g LEFT JOIN counted c USING (window_start, version, kind, column_name, bin)
    GROUP BY 1, 2, 3, 4, 5)
  SELECT c.window_start, c.window_end, c.version, c.kind, c.column_name, b.type, b.edges, b.categories, b.source,
         b.counts, b.null_count, b.spread, c.current, c.current_null
  FROM current c JOIN mad.baselines b ON b.model = split_part(binding.model, '@', 1) AND b.version = c.version AND b.kind = c.kind AND b.column_name = c.column_name;
$$;

-- Drift of a prediction table: per window (see mad.drift_windows), version, profiled column and metric, the value
-- against its threshold, with the rows each side holds. A window without rows gives n_current = 0 and no values.
-- Only the table's owner (or a member) and mad_admin may ask. In named notation write "window" => '1 day' (WINDOW is
-- reserved in PostgreSQL), or pass it third.
CREATE FUNCTION mad.drift(table_name text, since timestamptz DEFAULT NULL, "window" interval DEFAULT '1 day')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, "column" text, kind text, metric text,
               value double precision, threshold double precision, drifted boolean, n_baseline bigint, n_current bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
BEGIN
  PERFORM mad.require_binding_owner(binding, 'see the drift of');
  IF NOT EXISTS (SELECT FROM mad.baselines b WHERE b.model = split_part(binding.model, '@', 1)) THEN
    RAISE NOTICE 'No version of model % has a baseline, so % has no drift to show. Set one: SELECT mad.set_baseline(%L, <version>, ''<table>'');',
      split_part(binding.model, '@', 1), table_name, split_part(binding.model, '@', 1);
  END IF;
  RETURN QUERY
  SELECT d.window_start, d.window_end, d.version, d.column_name, d.kind, m.metric, m.value, m.threshold, m.drifted,
         (SELECT sum(x) FROM unnest(d.baseline) x)::bigint + d.baseline_null,
         (SELECT sum(x) FROM unnest(d.current) x)::bigint + d.current_null
  FROM mad.drift_counts(binding, since, "window") d
  CROSS JOIN LATERAL mad.drift_metric_values(d.type, d.baseline, d.baseline_null, d.current, d.current_null,
                                             CASE WHEN d.type = 'numeric' THEN mad.bin_positions(d.edges) END, d.spread) WITH ORDINALITY m(metric, value, threshold, drifted, n)
  ORDER BY d.window_start, d.version, d.kind, d.column_name, m.n;
END
$$;

-- The histograms behind mad.drift, for the report: per window, version, column and bin (-1: null), its label and
-- the baseline's and the window's rows. The baseline's bins hold its source's quantiles and categories, so they are
-- shown (labels and baseline counts) only to roles that may read that source; others see the window's counts under
-- 'bin N' labels.
CREATE FUNCTION mad.drift_histograms(table_name text, since timestamptz DEFAULT NULL, "window" interval DEFAULT '1 day')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, "column" text, kind text, bin int, label text,
               baseline bigint, current bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
BEGIN
  PERFORM mad.require_binding_owner(binding, 'see the drift of');
  RETURN QUERY
  SELECT d.window_start, d.window_end, d.version, d.column_name, d.kind, i,
         CASE WHEN may_read THEN mad.bin_label(d.type, d.edges, d.categories, i) WHEN i = -1 THEN 'null' ELSE 'bin ' || i END,
         CASE WHEN may_read THEN CASE WHEN i = -1 THEN d.baseline_null ELSE d.baseline[i + 1] END END,
         CASE WHEN i = -1 THEN d.current_null ELSE d.current[i + 1] END
  FROM mad.drift_counts(binding, since, "window") d
  CROSS JOIN LATERAL (SELECT to_regclass(d.source) IS NOT NULL AND pg_catalog.has_table_privilege(mad.caller_role(), to_regclass(d.source), 'SELECT') AS may_read) r
  CROSS JOIN LATERAL generate_series(-1, cardinality(d.baseline) - 1) i
  ORDER BY d.window_start, d.version, d.kind, d.column_name, i;
END
$$;

GRANT SELECT ON mad.baselines, mad.profile_counts TO mad_admin, mad_sidecar;
REVOKE ALL ON FUNCTION mad.log_gamma(double precision), mad.gamma_q(double precision, double precision), mad.chi_square_99(double precision),
  mad.ks_p(double precision, double precision, double precision), mad.bin_positions(double precision[]),
  mad.bin_label(text, double precision[], text[], integer),
  mad.drift_metric_values(text, bigint[], bigint, bigint[], bigint, double precision[], double precision),
  mad.drift_windows(timestamp with time zone, interval), mad.drift_counts(mad.prediction_tables, timestamp with time zone, interval),
  mad.baseline_columns(text, integer, regclass), mad.store_baseline(text, integer, text, text, jsonb),
  mad.set_baseline(text, integer, regclass, jsonb), mad.bin_of(double precision, double precision[]),
  mad.add_profile_counts(text, integer, timestamp with time zone, text[], text[], integer[], bigint[]),
  mad.drift(text, timestamp with time zone, interval), mad.drift_histograms(text, timestamp with time zone, interval) FROM PUBLIC;
-- set_baseline runs as its caller: what it calls must be granted to mad_admin (the checks are in the definer ones).
GRANT EXECUTE ON FUNCTION mad.set_baseline(text, integer, regclass, jsonb), mad.baseline_columns(text, integer, regclass),
  mad.store_baseline(text, integer, text, text, jsonb), mad.bin_of(double precision, double precision[]) TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.add_profile_counts(text, integer, timestamp with time zone, text[], text[], integer[], bigint[]) TO mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.drift(text, timestamp with time zone, interval), mad.drift_histograms(text, timestamp with time zone, interval) TO mad_admin, mad_user;
