-- mad.performance without its per-key pass when no key can need one (issue 17, speed), results unchanged.
--
-- Measured at 1 M predictions and 1 M outcomes (docs/BENCHMARKS.md "After 050_1"): the per-key pass (each key's latest
-- label and how often it was served, a hash aggregate of 2 M rows into 1 M keys) and the hash join of the served rows
-- back to it cost 2.5 s of backend CPU, three times a plain join. That pass exists for two rare cases: a key observed
-- twice (the latest label wins) and a key served twice (the label grades the prediction in force when it was
-- observed). When neither can happen, a served row is graded by its key's only label if it was scored by then, and
-- one hash join (a FULL JOIN, so that labels grading nothing are still counted for the notice) does it all:
--   * the source cannot repeat a key when it is a table (or partitioned table, or materialized view) without
--     inheritance children, with a valid, immediate unique index without predicate or expressions on some of the key
--     columns (mad.source_unique_on, read from the catalog: nothing of the source's rows). For keys of several
--     columns only when every column is a number, date/time, boolean or uuid, whose text can hold no U&'\001F' (the
--     separator of the key's text), so that distinct keys have distinct texts;
--   * the history repeats no key when its primary key (key, scored_at) has no key twice (mad.served_once: an
--     index-only scan, grouped in key order, about a fifth of the plain join), and nothing is served from devices or
--     online (those come through other tables: the general path). A definer, because mad_history is nobody's to read;
--     it gives an answer only to whom mad.served_predictions would give the rows (it calls it first).
-- roc_auc without sorting every labelled row: per (window, version, arm, class) the negatives' scores are sorted once
-- into an array (ascending, and negated for descending), and each positive counts the negatives at or below and at or
-- above its score by binary search (width_bucket): 2U = Σ over positives of (≤ s) + (N − (≥ s)), the same whole
-- numbers as 050_1's running count over distinct scores, so the same AUC to the last bit. The per-positive step sits
-- under an OFFSET 0 so that no sort or hash above it carries the arrays, and enable_sort is off for the function so
-- that the positives are summed by hashing, not sorted (every sort the statement needs still happens).
-- Otherwise the statement is 050_1's, unchanged. Either way the rights are 050_1's: the source read with the caller's,
-- the history through mad.served_predictions. The checks, the messages and every other definition are 050_1's
-- (marked 056 where changed: a label-only row of the FULL JOIN has no window and is left out of the totals).

-- Whether the relation source can hold no two rows with the same key (key_columns: its columns holding the key).
CREATE FUNCTION mad.source_unique_on(source regclass, key_columns text[]) RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = mad, pg_temp AS $$
  SELECT c.relkind IN ('r', 'p', 'm') AND NOT (c.relkind = 'r' AND c.relhassubclass)
         AND (cardinality(key_columns) = 1 OR NOT EXISTS (
               SELECT FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
               WHERE a.attrelid = c.oid AND a.attname = ANY (key_columns)
                 AND NOT (t.typcategory IN ('N', 'D', 'B') OR t.oid = 'pg_catalog.uuid'::pg_catalog.regtype)))
         AND EXISTS (
               SELECT FROM pg_catalog.pg_index i
               WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                 AND NOT EXISTS (SELECT FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) n
                                 LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[n.n]
                                 WHERE a.attname IS NULL OR NOT a.attname = ANY (key_columns)))
  FROM pg_catalog.pg_class c WHERE c.oid = source;
$$;

-- Whether every key served to table_name was served once: the history's primary key in key order, no key twice,
-- and no rows from devices (mad.device, mad.edge_predictions) or online. NULL answers nothing (general path).
CREATE FUNCTION mad.served_once(table_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  repeated boolean;
BEGIN
  PERFORM FROM mad.served_predictions(table_name, '-infinity');  -- its checks: who may see this history at all
  IF table_name LIKE 'online:%' OR nullif(pg_catalog.current_setting('mad.device', true), '') IS NOT NULL
     OR EXISTS (SELECT FROM mad.edge_predictions e WHERE e.prediction_table = table_name) THEN
    RETURN false;
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT FROM mad_history.%I h GROUP BY h.key HAVING count(*) > 1)', table_name) INTO repeated;
  RETURN NOT repeated;
END
$$;

REVOKE ALL ON FUNCTION mad.source_unique_on(regclass, text[]), mad.served_once(text) FROM PUBLIC;
-- Called by mad.outcome_metrics, which runs as its caller.
GRANT EXECUTE ON FUNCTION mad.source_unique_on(regclass, text[]), mad.served_once(text) TO mad_admin, mad_user;

CREATE OR REPLACE FUNCTION mad.outcome_metrics(table_name text, "window" interval, as_of timestamptz, since timestamptz)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, arm text, metric text, value double precision,
               n_labeled bigint, coverage double precision, successes bigint, trials bigint, variance double precision)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = mad, pg_temp SET work_mem = '256MB' SET enable_mergejoin = off SET enable_nestloop = off SET enable_sort = off SET jit = off AS $$
DECLARE
  outcome mad.outcomes;
  query text;
  labels text;
  grading text;
  duplicates text;
  unmatched text;
  once boolean;
  r record;
  is_first boolean := true;
BEGIN
  IF "window" IS NULL OR "window" <= interval '0' OR extract(month FROM "window") <> 0 OR extract(year FROM "window") <> 0 THEN
    RAISE EXCEPTION 'The window % is not a positive interval of days, hours or less (months have no fixed length).', coalesce("window"::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use for example ''1 day'' or ''7 days''.';
  END IF;
  -- The predictions' checks first (no such table, not the caller's to read, no outcomes bound): an empty read, by the
  -- history's scored_at index.
  PERFORM FROM mad.served_predictions(table_name, '-infinity');
  SELECT * INTO outcome FROM mad.outcomes o WHERE o.prediction_table = table_name;

  labels := format('SELECT %s AS key, o.%I::text AS y, o.%I::timestamptz AS observed_at FROM %s o WHERE o.%I IS NOT NULL AND %s AND ($3 IS NULL OR o.%I <= $3)',
                   mad.key_text_inline_sql('o', outcome.key_columns), outcome.label_column, outcome.observed_at_column, outcome.source, outcome.label_column,
                   (SELECT string_agg(format('o.%I IS NOT NULL', k), ' AND ') FROM unnest(outcome.key_columns) k), outcome.observed_at_column);
  -- 056: with at most one label and one served row per key, a label grades its key's row if that was scored by then,
  -- and one hash join settles every key (the plain join's cost); otherwise 050_1's per-key pass.
  once := mad.source_unique_on(outcome.source, outcome.key_columns) AND mad.served_once(table_name);
  grading := CASE WHEN once THEN $g$
    joined AS (  -- every served row with its key's label if it was scored by then; lost: a label that grades nothing
      SELECT s.scored_at, s.version, s.arm, s.outputs, CASE WHEN s.scored_at <= l.observed_at THEN l.y END AS y,
             l.observed_at IS NOT NULL AND (s.key IS NULL OR s.scored_at > l.observed_at) AS lost
      FROM labels_read l FULL JOIN served s ON s.key = l.key
      OFFSET 0
    ),
$g$ ELSE format($g$
    keys AS (  -- one hashed pass per key: its latest observation, and how often and until when it was served
      SELECT u.key, count(u.observed_at) AS n_labels, max(u.observed_at) AS observed_at, min(u.y) AS y,
             count(u.scored_at) AS n_served, max(u.scored_at) AS last_scored
      FROM (SELECT l.key, l.y, l.observed_at, NULL::timestamptz AS scored_at FROM labels_read l
            UNION ALL
            SELECT s.key, NULL, NULL, s.scored_at FROM served s) u
      GROUP BY u.key
    ),
    exceptions AS (  -- the rare keys the pass above cannot settle alone
      SELECT e.key, max(e.y) AS y, max(e.scored_at) AS scored_at FROM (
        -- observed more than once: the label of the latest observation (the source is read again for these keys only)
        SELECT DISTINCT ON (l.key) l.key, l.y, NULL::timestamptz AS scored_at
        FROM (%1$s) l JOIN keys k ON k.key = l.key AND k.n_labels > 1 AND l.observed_at = k.observed_at
        UNION ALL
        -- served again after the label was observed: the prediction in force when it was
        SELECT s.key, NULL, max(s.scored_at) FROM served s
        JOIN keys k ON k.key = s.key AND k.n_served > 1 AND k.last_scored > k.observed_at AND s.scored_at <= k.observed_at
        GROUP BY s.key) e
      GROUP BY e.key
    ),
    joined AS (  -- every served row with the label that grades it, if any (OFFSET 0: each expression once per row)
      SELECT s.scored_at, s.version, s.arm, s.outputs,
             CASE WHEN k.n_labels > 0 AND s.scored_at <= k.observed_at
                   AND (k.n_served = 1 OR s.scored_at = coalesce(e.scored_at, CASE WHEN k.last_scored <= k.observed_at THEN k.last_scored END))
                  THEN coalesce(e.y, k.y) END AS y, false AS lost
      FROM served s JOIN keys k ON k.key = s.key LEFT JOIN exceptions e ON e.key = s.key
      OFFSET 0
    ),
$g$, labels) END;
  duplicates := CASE WHEN once THEN '0' ELSE '(SELECT coalesce(sum(k.n_labels - 1), 0) FROM keys k WHERE k.n_labels > 1)' END;
  unmatched := CASE WHEN once THEN '(SELECT coalesce(sum(s.lost), 0) FROM sums s)'
                    ELSE '(SELECT count(*) FROM keys k WHERE k.n_labels > 0) - (SELECT coalesce(sum(s.n), 0) FROM sums s WHERE s.cell_y IS NOT NULL)' END;

  query := format($q$
    WITH served AS (
      SELECT s.key, s.version, s.arm, s.outputs, s.scored_at FROM mad.served_predictions($1, $3) s WHERE $4 IS NULL OR s.scored_at >= $4
    ),
    model_outputs AS (  -- what the model is, from a served row's outputs
      SELECT f.outputs ? 'label' AS classifier,
             (SELECT array_agg(substr(k, 13) ORDER BY k) FROM jsonb_object_keys(f.outputs) k WHERE k LIKE 'probability\_%%') AS classes,
             (SELECT min(k) FROM jsonb_each(f.outputs) e(k, v) WHERE jsonb_typeof(v) = 'number') AS value_key,
             coalesce(f.outputs ->> 'label' IN ('true', 'false'), false) AS boolean_classes
      FROM (SELECT s.outputs FROM served s LIMIT 1) f
    ),
    model AS (  -- binary: the positive class is the greater; its probability is the score
      SELECT m.*, m.classifier AND coalesce(cardinality(m.classes) = 2, false) AS binary, m.classes[2] AS positive, m.classes[1] AS negative,
             'probability_' || m.classes[2] AS positive_key, 'probability_' || m.classes[1] AS negative_key
      FROM model_outputs m
    ),
    labels_read AS (  -- the caller's own read of the source
      %1$s
    ),
    %2$s    extracted AS (  -- what each row's outputs say: binary models read their two probabilities by constant keys
      SELECT pg_catalog.date_bin($2, j.scored_at, '2000-01-03 00:00:00+00') AS w, j.version, j.arm, j.lost, j.outputs ->> 'label' AS pred,
             CASE WHEN NOT m.classifier THEN CASE WHEN j.y IS NOT NULL THEN '' END
                  WHEN m.boolean_classes THEN j.y WHEN j.y = 'true' THEN '1' WHEN j.y = 'false' THEN '0' ELSE j.y END AS y,
             CASE WHEN m.binary THEN (j.outputs ->> m.positive_key)::double precision END AS p_pos,
             CASE WHEN m.binary THEN (j.outputs ->> m.negative_key)::double precision END AS p_neg,
             CASE WHEN m.classifier AND NOT m.binary THEN j.outputs END AS outputs,
             CASE WHEN NOT m.classifier AND j.y IS NOT NULL THEN (j.outputs ->> m.value_key)::double precision - j.y::double precision END AS err,
             CASE WHEN NOT m.classifier AND j.y IS NOT NULL THEN abs(j.y::double precision) END AS abs_y
      FROM joined j, model m
      OFFSET 0
    ),
    scored AS (  -- the per-row numbers the sums need
      SELECT x.*, CASE WHEN x.y IS NOT NULL AND m.classifier THEN least(floor(x.conf * 10), 9) END AS bin
      FROM model m, LATERAL (
        SELECT e.w, e.version, e.arm, e.lost, e.pred, e.y, e.err, e.abs_y, e.outputs,
               coalesce(CASE WHEN m.binary THEN CASE e.pred WHEN m.positive THEN e.p_pos WHEN m.negative THEN e.p_neg END
                             ELSE (e.outputs ->> ('probability_' || e.pred))::double precision END, 1) AS p_pred,
               CASE WHEN e.y IS NOT NULL AND m.classifier
                    THEN -ln(greatest(least(coalesce(CASE WHEN m.binary THEN CASE e.y WHEN m.positive THEN e.p_pos WHEN m.negative THEN e.p_neg END
                                                          ELSE (e.outputs ->> ('probability_' || e.y))::double precision END, 0), 1 - 1e-15), 1e-15)) END AS loss,
               CASE WHEN m.binary THEN coalesce(e.p_pos, 0)
                    ELSE coalesce((e.outputs ->> ('probability_' || e.pred))::double precision, 1) END AS conf,
               CASE WHEN m.binary THEN e.y = m.positive ELSE e.y = e.pred END AS hit
        FROM extracted e
        OFFSET 0) x
    ),
    sums AS (  -- the one pass of sums: per window, version, arm, confusion-matrix cell and calibration bin
      SELECT r.w, r.version, r.arm, r.y AS cell_y, r.pred, r.bin, count(*) AS n, sum(r.p_pred) AS p_pred,
             sum(r.loss) AS loss, sum(r.loss * r.loss) AS loss2, sum(r.conf) FILTER (WHERE r.bin IS NOT NULL) AS conf,
             count(*) FILTER (WHERE r.hit) AS hits, sum(abs(r.err)) AS abs_err, sum(r.err * r.err) AS sq_err, sum(r.err) AS err,
             sum(abs(r.err) / greatest(r.abs_y, 2.220446049250313e-16)) AS ape, sum((abs(r.err) / greatest(r.abs_y, 2.220446049250313e-16)) ^ 2) AS ape2,
             count(*) FILTER (WHERE r.lost) AS lost
      FROM scored r GROUP BY 1, 2, 3, 4, 5, 6
    ),
    totals AS (
      SELECT s.w, s.version, s.arm, sum(s.n) AS n, coalesce(sum(s.n) FILTER (WHERE s.cell_y IS NOT NULL), 0) AS nl,
             coalesce(sum(s.n) FILTER (WHERE s.cell_y = s.pred), 0) AS correct, sum(s.p_pred) AS p_pred, sum(s.loss) AS loss, sum(s.loss2) AS loss2,
             sum(s.abs_err) AS abs_err, sum(s.sq_err) AS sq_err, sum(s.err) AS err, sum(s.ape) AS ape, sum(s.ape2) AS ape2
      FROM sums s WHERE s.w IS NOT NULL GROUP BY 1, 2, 3  -- (a label with no served row of its key has no window)
    ),
    ranked AS (  -- labelled classifier rows with the class roc_auc is taken over (its place among the model's classes;
                 -- binary: 0, the positive class) and their score of it. Each branch runs only for its kind of model
                 -- (the gates are one-time filters). 056: no group number (only the negatives are sorted, by score)
      SELECT s.w, s.version, s.arm, 0 AS class, s.conf AS score, s.hit AS positive
      FROM scored s
      WHERE s.y IS NOT NULL AND (SELECT m.binary FROM model m)
      UNION ALL
      SELECT s.w, s.version, s.arm, c.n::int, coalesce((s.outputs ->> ('probability_' || c.class))::double precision, 0), s.y = c.class
      FROM scored s
      CROSS JOIN LATERAL unnest((SELECT m.classes FROM model m)) WITH ORDINALITY c(class, n)
      WHERE s.y IS NOT NULL AND (SELECT m.classifier AND NOT m.binary FROM model m)
    ),
    classes AS (  -- per window: the classes present (labels and predictions of labelled rows), with their counts
      SELECT c.w, c.version, c.arm, c.class,
             sum(c.tp) AS tp, sum(c.pp) AS pp, sum(c.ap) AS ap
      FROM (SELECT s.w, s.version, s.arm, v.class, v.tp, v.pp, v.ap FROM sums s
            CROSS JOIN LATERAL (VALUES (s.cell_y, CASE WHEN s.cell_y = s.pred THEN s.n ELSE 0 END, 0::bigint, s.n),
                                       (s.pred, 0::bigint, s.n, 0::bigint)) v(class, tp, pp, ap)
            WHERE s.cell_y IS NOT NULL AND v.class IS NOT NULL) c
      GROUP BY 1, 2, 3, 4
    ),
    prf AS (  -- binary: the positive class; otherwise macro averages over the classes present
      SELECT c.w, c.version, c.arm, sum(c.tp) AS tp, sum(c.pp) AS pp, sum(c.ap) AS ap,
             avg(coalesce(c.tp::double precision / nullif(c.pp, 0), 0)) AS prec,
             avg(coalesce(c.tp::double precision / nullif(c.ap, 0), 0)) AS rec,
             avg(coalesce(2.0 * c.tp / nullif(c.pp + c.ap, 0), 0)) AS f1
      FROM (SELECT c.*, count(*) OVER k AS k, c.class = max(c.class) OVER k AS greatest FROM classes c
            WINDOW k AS (PARTITION BY c.w, c.version, c.arm)) c, model m
      WHERE CASE WHEN cardinality(m.classes) = 2 THEN c.class = m.classes[2]
                 WHEN m.classes IS NULL THEN c.k > 2 OR c.greatest ELSE true END
      GROUP BY 1, 2, 3
    ),
    negatives AS (  -- 056: per group and class, its negatives' scores in order, ascending and (negated) descending
      SELECT r.w, r.version, r.arm, r.class, count(*)::double precision AS n, array_agg(r.score ORDER BY r.score) AS up,
             array_agg(-r.score ORDER BY -r.score) AS down
      FROM ranked r WHERE NOT r.positive GROUP BY r.w, r.version, r.arm, r.class
    ),
    auc AS (  -- per class, Mann–Whitney: U = Σ over positives of (negatives scored lower + half the negatives tied),
              -- AUC = U / (P · N), the same number as mean ranks give (scikit-learn's ties). 056: a positive scored s
              -- finds by binary search (width_bucket, over the negatives in order) how many negatives are ≤ s and how
              -- many ≥ s: 2U = Σ (≤ s) + (N − (≥ s)). Only the negatives are sorted, by score alone. The counts and 2U
              -- are whole numbers below 2^53, so double precision holds them exactly, and 050_1's number comes out
      SELECT a.w, a.version, a.arm, avg(a.auc) AS roc_auc FROM (
        SELECT u.w, u.version, u.arm, u.class, sum(u.twice_u) / 2 / nullif(count(*) * u.n, 0) AS auc
        FROM (SELECT p.w, p.version, p.arm, p.class, n.n,
                     (pg_catalog.width_bucket(p.score, n.up) + n.n - pg_catalog.width_bucket(-p.score, n.down))::double precision AS twice_u
              FROM ranked p JOIN negatives n ON (n.w, n.version, n.arm, n.class) = (p.w, p.version, p.arm, p.class)
              WHERE p.positive
              OFFSET 0) u  -- (so that no sort or hash above carries the arrays)
        GROUP BY u.w, u.version, u.arm, u.class, u.n) a
      GROUP BY 1, 2, 3
    ),
    calibration AS (  -- Σ over bins of |Σ scores − Σ hits|, over the labelled rows
      SELECT s.w, s.version, s.arm, sum(abs(s.conf - s.hits)) / nullif(sum(s.n), 0) AS ece
      FROM (SELECT s.w, s.version, s.arm, s.bin, sum(s.n) AS n, sum(s.conf) AS conf, sum(s.hits) AS hits
            FROM sums s WHERE s.bin IS NOT NULL GROUP BY 1, 2, 3, 4) s
      GROUP BY 1, 2, 3
    ),
    checks AS (  -- for the messages: duplicates, labels grading nothing, labels that are no class of the model
      SELECT %3$s AS duplicates, %4$s AS unmatched,
             (SELECT m.classifier FROM model m) AS classifier,
             (SELECT s.cell_y FROM sums s WHERE s.cell_y IS NOT NULL LIMIT 1) AS some_label,
             (SELECT m.classifier FROM model m) AND EXISTS (SELECT FROM sums s WHERE s.cell_y IS NOT NULL)
             AND NOT EXISTS (SELECT FROM sums s, model m WHERE s.cell_y IS NOT NULL
                             AND (s.cell_y = ANY (m.classes) OR EXISTS (SELECT FROM sums p WHERE p.pred = s.cell_y))) AS no_class,
             (SELECT string_agg(DISTINCT quote_literal(s.pred), ', ') FROM sums s) AS some_classes
    )
    SELECT t.w AS window_start, t.w + $2 AS window_end, t.version, t.arm, v.metric, v.value, t.nl AS n_labeled,
           t.nl::double precision / t.n AS coverage, v.successes, v.trials, v.variance,
           c.duplicates, c.unmatched, c.some_label, c.no_class, c.some_classes
    FROM totals t CROSS JOIN checks c
    LEFT JOIN prf p ON (p.w, p.version, p.arm) = (t.w, t.version, t.arm)
    LEFT JOIN auc a ON (a.w, a.version, a.arm) = (t.w, t.version, t.arm)
    LEFT JOIN calibration e ON (e.w, e.version, e.arm) = (t.w, t.version, t.arm)
    CROSS JOIN LATERAL (
      SELECT * FROM (VALUES
        (1, 'accuracy', t.correct::double precision / nullif(t.nl, 0), t.correct::bigint, t.nl::bigint, NULL::double precision),
        (2, 'precision', p.prec, CASE WHEN p.tp IS NOT NULL AND cardinality((SELECT classes FROM model)) = 2 THEN p.tp::bigint END,
                                 CASE WHEN cardinality((SELECT classes FROM model)) = 2 THEN p.pp::bigint END, NULL),
        (3, 'recall', p.rec, CASE WHEN p.tp IS NOT NULL AND cardinality((SELECT classes FROM model)) = 2 THEN p.tp::bigint END,
                             CASE WHEN cardinality((SELECT classes FROM model)) = 2 THEN p.ap::bigint END, NULL),
        (4, 'f1', p.f1, NULL, NULL, NULL),
        (5, 'roc_auc', a.roc_auc, NULL, NULL, NULL),
        (6, 'log_loss', t.loss / nullif(t.nl, 0), NULL, t.nl::bigint, (t.loss2 - t.loss * t.loss / nullif(t.nl, 0)) / nullif(t.nl - 1, 0)),
        (7, 'ece', e.ece, NULL, NULL, NULL),
        (8, 'cbpe_accuracy', t.p_pred / t.n, NULL, NULL, NULL)) m(ord, metric, value, successes, trials, variance)
      WHERE c.classifier
      UNION ALL
      SELECT * FROM (VALUES
        (1, 'mae', t.abs_err / nullif(t.nl, 0), NULL::bigint, t.nl::bigint, (t.sq_err - t.abs_err * t.abs_err / nullif(t.nl, 0)) / nullif(t.nl - 1, 0)),
        (2, 'rmse', sqrt(t.sq_err / nullif(t.nl, 0)), NULL, NULL, NULL::double precision),
        (3, 'mape', t.ape / nullif(t.nl, 0), NULL, t.nl::bigint, (t.ape2 - t.ape * t.ape / nullif(t.nl, 0)) / nullif(t.nl - 1, 0)),
        (4, 'mean_error', t.err / nullif(t.nl, 0), NULL, t.nl::bigint, (t.sq_err - t.err * t.err / nullif(t.nl, 0)) / nullif(t.nl - 1, 0))) m(ord, metric, value, successes, trials, variance)
      WHERE NOT c.classifier
      ORDER BY 1) v
    ORDER BY t.w, t.version, t.arm, v.ord
    $q$,

    labels, grading, duplicates, unmatched);

  BEGIN
    FOR r IN EXECUTE query USING table_name, "window", as_of, since LOOP
      IF is_first THEN
        is_first := false;
        IF r.no_class THEN
          RAISE EXCEPTION 'No label in column % of % is one of the classes of %''s model (labels such as %, classes such as %).',
            quote_ident(outcome.label_column), outcome.source, table_name, quote_literal(r.some_label), r.some_classes
            USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF r.duplicates > 0 THEN
          RAISE NOTICE '% outcome(s) of % repeat a key: the latest observation of each key is used.', r.duplicates, outcome.source;
        END IF;
        IF r.unmatched > 0 AND since IS NULL THEN  -- with since, a label may grade a row served before it
          RAISE NOTICE '% outcome(s) of % match no prediction of % scored at or before they were observed: they are not counted.',
            r.unmatched, outcome.source, table_name;
        END IF;
      END IF;
      window_start := r.window_start; window_end := r.window_end; version := r.version; arm := r.arm; metric := r.metric; value := r.value;
      n_labeled := r.n_labeled; coverage := r.coverage; successes := r.successes; trials := r.trials; variance := r.variance;
      RETURN NEXT;
    END LOOP;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'Column % of % holds labels that are not numbers, and %''s model is a regressor.', quote_ident(outcome.label_column), outcome.source, table_name
      USING ERRCODE = 'datatype_mismatch';
  END;
END
$$;

