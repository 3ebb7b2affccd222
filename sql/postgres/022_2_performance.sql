-- mad.performance: metrics of the served predictions against their outcomes, per window, version and arm (issue 17).
--
-- It runs as its caller (SECURITY INVOKER): the outcome source is read with the caller's own rights, so a reader who
-- may read the predictions but not the labels gets PostgreSQL's "permission denied" for the source, never the labels
-- through a metric. The predictions come from mad.served_predictions, which checks the caller may read mad_out.<name>.
--
-- A scored row is one prediction written to the table (one history row); its window is the window of its scored_at.
-- Each key's label is its latest observation (duplicates: the latest wins, a NOTICE says how many were dropped); it
-- grades the prediction in force when it was observed (the key's latest scored at or before observed_at), so a late
-- label changes only the window of that prediction. as_of keeps the predictions scored and the labels observed by then.
-- Metrics follow scikit-learn: binary classifiers take the greater class (in text order) as positive, multi-class
-- ones macro-average precision, recall, f1 and one-vs-rest roc_auc; log_loss clips probabilities to [1e-15, 1 - 1e-15];
-- ece uses 10 equal-width bins (of the positive class's probability when binary, of the top class's otherwise);
-- cbpe_accuracy is the mean probability of the predicted class over every scored row, labelled or not.

CREATE FUNCTION mad.performance(table_name text, "window" interval DEFAULT '1 day', as_of timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, arm text, metric text, value double precision,
               n_labeled bigint, coverage double precision)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = mad, pg_temp AS $$
DECLARE
  outcome mad.outcomes;
  classifier boolean;
  duplicates bigint;
  unmatched bigint;
  value_key text;
  origin constant timestamptz := '2000-01-03 00:00:00+00'; -- a Monday: weekly windows start on Mondays (UTC)
BEGIN
  IF "window" IS NULL OR "window" <= interval '0' OR extract(month FROM "window") <> 0 OR extract(year FROM "window") <> 0 THEN
    RAISE EXCEPTION 'The window % is not a positive interval of days, hours or less (months have no fixed length).', coalesce("window"::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use for example ''1 day'' or ''7 days''.';
  END IF;
  DROP TABLE IF EXISTS pg_temp.mad_perf_served, pg_temp.mad_perf_labels, pg_temp.mad_perf_rows;
  CREATE TEMP TABLE mad_perf_served ON COMMIT DROP AS SELECT * FROM mad.served_predictions(table_name, as_of);
  SELECT * INTO outcome FROM mad.outcomes o WHERE o.prediction_table = table_name;

  -- The caller's own read of the source.
  EXECUTE format('CREATE TEMP TABLE mad_perf_labels ON COMMIT DROP AS '
                 'SELECT %s AS key, o.%I AS label, o.%I::timestamptz AS observed_at FROM %s o WHERE o.%I IS NOT NULL AND ($1 IS NULL OR o.%I <= $1)',
                 mad.key_text_sql('o', outcome.key_columns), outcome.label_column, outcome.observed_at_column, outcome.source,
                 outcome.label_column, outcome.observed_at_column)
    USING as_of;
  DELETE FROM mad_perf_labels l USING (
    SELECT ctid, row_number() OVER (PARTITION BY l2.key ORDER BY l2.observed_at DESC) AS n FROM mad_perf_labels l2) d
  WHERE l.ctid = d.ctid AND d.n > 1;
  GET DIAGNOSTICS duplicates = ROW_COUNT;
  IF duplicates > 0 THEN
    RAISE NOTICE '% outcome(s) of % repeat a key: the latest observation of each key is used.', duplicates, outcome.source;
  END IF;

  SELECT bool_or(s.outputs ? 'label') INTO classifier FROM mad_perf_served s;
  IF NOT classifier THEN
    SELECT k INTO value_key FROM mad_perf_served s, jsonb_each(s.outputs) e(k, v) WHERE jsonb_typeof(v) = 'number' ORDER BY k LIMIT 1;
  END IF;

  CREATE TEMP TABLE mad_perf_rows ON COMMIT DROP AS
  SELECT date_bin("window", s.scored_at, origin) AS w, s.version, s.arm, s.key, s.outputs, m.label::text AS y,
         CASE WHEN classifier THEN s.outputs ->> 'label' END AS pred
  FROM mad_perf_served s
  LEFT JOIN (SELECT DISTINCT ON (l.key) l.key, l.label, s2.scored_at
             FROM mad_perf_labels l JOIN mad_perf_served s2 ON s2.key = l.key AND s2.scored_at <= l.observed_at
             ORDER BY l.key, s2.scored_at DESC) m ON m.key = s.key AND m.scored_at = s.scored_at;

  SELECT (SELECT count(*) FROM mad_perf_labels) - count(*) INTO unmatched FROM mad_perf_rows r WHERE r.y IS NOT NULL;
  IF unmatched > 0 THEN
    RAISE NOTICE '% outcome(s) of % match no prediction of % scored at or before they were observed: they are not counted.',
      unmatched, outcome.source, table_name;
  END IF;

  IF classifier THEN
    -- Booleans against 0/1 classes: true is 1.
    UPDATE mad_perf_rows r SET y = CASE r.y WHEN 'true' THEN '1' WHEN 'false' THEN '0' END
    WHERE r.y IN ('true', 'false') AND NOT EXISTS (SELECT FROM mad_perf_rows r2 WHERE r2.pred IN ('true', 'false'));
    IF EXISTS (SELECT FROM mad_perf_rows r WHERE r.y IS NOT NULL)
       AND NOT EXISTS (SELECT FROM mad_perf_rows r WHERE r.y IS NOT NULL AND (r.outputs ? ('probability_' || r.y) OR r.y = r.pred)) THEN
      RAISE EXCEPTION 'No label in column % of % is one of the classes of %''s model (labels such as %, classes such as %).',
        quote_ident(outcome.label_column), outcome.source, table_name,
        (SELECT quote_literal(r.y) FROM mad_perf_rows r WHERE r.y IS NOT NULL LIMIT 1),
        (SELECT string_agg(DISTINCT quote_literal(r.pred), ', ') FROM (SELECT pred FROM mad_perf_rows LIMIT 1000) r)
        USING ERRCODE = 'datatype_mismatch';
    END IF;
    RETURN QUERY
    WITH g AS (
      SELECT r.w, r.version, r.arm, count(*) AS n, count(r.y) AS nl,
             avg(coalesce((r.outputs ->> ('probability_' || r.pred))::double precision, 1)) AS cbpe,
             avg((r.pred = r.y)::int) FILTER (WHERE r.y IS NOT NULL) AS accuracy,
             -avg(ln(greatest(least(coalesce((r.outputs ->> ('probability_' || r.y))::double precision, 0), 1 - 1e-15), 1e-15)))
               FILTER (WHERE r.y IS NOT NULL) AS log_loss
      FROM mad_perf_rows r GROUP BY 1, 2, 3
    ),
    classes AS (
      SELECT DISTINCT r.w, r.version, r.arm, c.class
      FROM mad_perf_rows r CROSS JOIN LATERAL (VALUES (r.y), (r.pred)) c(class)
      WHERE r.y IS NOT NULL AND c.class IS NOT NULL
    ),
    positive AS (  -- binary: the greater class; multi-class: every class (macro)
      SELECT c.*, count(*) OVER (PARTITION BY c.w, c.version, c.arm) AS k,
             c.class = max(c.class) OVER (PARTITION BY c.w, c.version, c.arm) AS greatest
      FROM classes c
    ),
    per_class AS (
      SELECT p.w, p.version, p.arm, p.class, p.k,
             count(*) FILTER (WHERE r.pred = p.class AND r.y = p.class) AS tp,
             count(*) FILTER (WHERE r.pred = p.class) AS pp,
             count(*) FILTER (WHERE r.y = p.class) AS ap
      FROM positive p JOIN mad_perf_rows r ON r.w = p.w AND r.version = p.version AND r.arm = p.arm AND r.y IS NOT NULL
      WHERE p.k > 2 OR p.greatest
      GROUP BY 1, 2, 3, 4, 5
    ),
    ranked AS (  -- one-vs-rest: average ranks of the class's probability (ties share their mean rank)
      SELECT p.w, p.version, p.arm, p.class, (r.y = p.class) AS hit,
             (rank() OVER o + count(*) OVER t - 1 + rank() OVER o) / 2.0 AS rnk
      FROM per_class p JOIN mad_perf_rows r ON r.w = p.w AND r.version = p.version AND r.arm = p.arm AND r.y IS NOT NULL
      CROSS JOIN LATERAL (SELECT coalesce((r.outputs ->> ('probability_' || p.class))::double precision, 0) AS score) s
      WINDOW o AS (PARTITION BY p.w, p.version, p.arm, p.class ORDER BY s.score),
             t AS (PARTITION BY p.w, p.version, p.arm, p.class, s.score)
    ),
    auc AS (
      SELECT a.w, a.version, a.arm, avg(a.auc) AS roc_auc FROM (
        SELECT x.w, x.version, x.arm, x.class,
               (sum(x.rnk) FILTER (WHERE x.hit) - count(*) FILTER (WHERE x.hit) * (count(*) FILTER (WHERE x.hit) + 1) / 2.0)
                 / nullif(count(*) FILTER (WHERE x.hit) * count(*) FILTER (WHERE NOT x.hit), 0) AS auc
        FROM ranked x GROUP BY 1, 2, 3, 4) a
      GROUP BY 1, 2, 3
    ),
    prf AS (
      SELECT p.w, p.version, p.arm,
             avg(coalesce(p.tp::double precision / nullif(p.pp, 0), 0)) AS prec,
             avg(coalesce(p.tp::double precision / nullif(p.ap, 0), 0)) AS rec,
             avg(coalesce(2.0 * p.tp / nullif(p.pp + p.ap, 0), 0)) AS f1
      FROM per_class p GROUP BY 1, 2, 3
    ),
    calibration AS (
      SELECT b.w, b.version, b.arm, sum(abs(b.conf - b.observed) * b.n) / sum(b.n) AS ece FROM (
        SELECT x.w, x.version, x.arm, x.bin, avg(x.conf) AS conf, avg(x.observed) AS observed, count(*) AS n FROM (
          SELECT r.w, r.version, r.arm, least(floor(c.conf * 10), 9) AS bin, c.conf, c.observed
          FROM mad_perf_rows r
          LEFT JOIN per_class p ON p.w = r.w AND p.version = r.version AND p.arm = r.arm AND p.k = 2
          CROSS JOIN LATERAL (SELECT CASE WHEN p.class IS NOT NULL
                                          THEN coalesce((r.outputs ->> ('probability_' || p.class))::double precision, 0)
                                          ELSE coalesce((r.outputs ->> ('probability_' || r.pred))::double precision, 1) END AS conf,
                                     CASE WHEN p.class IS NOT NULL THEN (r.y = p.class)::int ELSE (r.y = r.pred)::int END AS observed) c
          WHERE r.y IS NOT NULL) x
        GROUP BY 1, 2, 3, 4) b
      GROUP BY 1, 2, 3
    )
    SELECT g.w, g.w + "window", g.version, g.arm, m.metric, m.value, g.nl, g.nl::double precision / g.n
    FROM g
    LEFT JOIN prf ON (prf.w, prf.version, prf.arm) = (g.w, g.version, g.arm)
    LEFT JOIN auc ON (auc.w, auc.version, auc.arm) = (g.w, g.version, g.arm)
    LEFT JOIN calibration c ON (c.w, c.version, c.arm) = (g.w, g.version, g.arm)
    CROSS JOIN LATERAL (VALUES (1, 'accuracy', g.accuracy), (2, 'precision', prf.prec), (3, 'recall', prf.rec), (4, 'f1', prf.f1),
                               (5, 'roc_auc', auc.roc_auc), (6, 'log_loss', g.log_loss), (7, 'ece', c.ece), (8, 'cbpe_accuracy', g.cbpe)) m(ord, metric, value)
    ORDER BY g.w, g.version, g.arm, m.ord;
  ELSE
    BEGIN
      UPDATE mad_perf_rows r SET y = r.y::double precision::text WHERE r.y IS NOT NULL;
    EXCEPTION WHEN invalid_text_representation THEN
      RAISE EXCEPTION 'Column % of % holds labels that are not numbers, and %''s model is a regressor.', quote_ident(outcome.label_column), outcome.source, table_name
        USING ERRCODE = 'datatype_mismatch';
    END;
    RETURN QUERY
    WITH e AS (
      SELECT r.w, r.version, r.arm, r.y::double precision AS y, (r.outputs ->> value_key)::double precision - r.y::double precision AS err
      FROM mad_perf_rows r
    ),
    g AS (
      SELECT e.w, e.version, e.arm, count(*) AS n, count(e.y) AS nl,
             avg(abs(e.err)) AS mae, sqrt(avg(e.err * e.err)) AS rmse,
             avg(abs(e.err) / greatest(abs(e.y), 2.220446049250313e-16)) AS mape, avg(e.err) AS mean_error
      FROM e GROUP BY 1, 2, 3
    )
    SELECT g.w, g.w + "window", g.version, g.arm, m.metric, m.value, g.nl, g.nl::double precision / g.n
    FROM g CROSS JOIN LATERAL (VALUES (1, 'mae', g.mae), (2, 'rmse', g.rmse), (3, 'mape', g.mape), (4, 'mean_error', g.mean_error)) m(ord, metric, value)
    ORDER BY g.w, g.version, g.arm, m.ord;
  END IF;
END
$$;

REVOKE ALL ON FUNCTION mad.performance(text, interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.performance(text, interval, timestamptz) TO mad_admin, mad_user;
-- mad.performance runs as its caller and spells the outcome source's key with it.
GRANT EXECUTE ON FUNCTION mad.key_text_sql(text, text[]) TO mad_admin, mad_user;
