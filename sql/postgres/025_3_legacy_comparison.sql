-- Legacy replacement (issue 15, docs/DEPLOYMENTS.md): a model replacing a legacy system is compared against it. The
-- owner of a prediction table names the column of its source that holds the legacy system's prediction, and the output
-- column it predicts (mad.set_legacy_column); mad.legacy_agreement and the deployment report then show, per arm and
-- version, how the predictions agree with it: labels (text, integer) as the share equal, values (real) as the mean
-- absolute difference. (Not "baseline": that word is the drift reference of a version, DESIGN.md.)
--
-- Who reads what: the agreement is computed when asked, by SECURITY INVOKER functions, so the source's legacy column
-- and mad_out.<name> are read with the caller's own rights (grants, column privileges, row security): naming a column
-- never lets anyone read it who may not SELECT it. Naming one needs the binding's ownership and SELECT on the column.

ALTER TABLE mad.prediction_tables ADD COLUMN legacy_column text, ADD COLUMN legacy_output text;
-- Names, not values: as readable as the binding's other columns.
GRANT SELECT (legacy_column, legacy_output) ON mad.prediction_tables TO mad_user;

-- Names (or with column_name NULL forgets) the source column that holds the legacy prediction, and the output column
-- it is compared with (default: the first output of the same kind, a label for text and integer legacy columns, a
-- value for real and double precision ones). The binding's owner or mad_admin; the caller must be able to SELECT it.
CREATE FUNCTION mad.set_legacy_column(table_name text, column_name text, output text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
  legacy_type text;
  kinds text[];
  chosen text;
BEGIN
  PERFORM mad.require_binding_owner(binding, 'name the legacy column of ' || quote_ident(binding.name));
  IF column_name IS NULL THEN
    UPDATE mad.prediction_tables p SET legacy_column = NULL, legacy_output = NULL WHERE p.name = binding.name;
    RETURN;
  END IF;
  SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO legacy_type FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = binding.source AND a.attname = set_legacy_column.column_name AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Source % has no column %; its columns are %.', binding.source, quote_ident(column_name),
      (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
       WHERE a.attrelid = binding.source AND a.attnum > 0 AND NOT a.attisdropped)
      USING ERRCODE = 'undefined_column';
  END IF;
  -- The caller's own right, as the agreement will be read with it: naming a column one may not read is refused here.
  IF NOT pg_catalog.has_column_privilege(mad.caller_role(), binding.source, column_name, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied to name %.% as the legacy column of %: role % may not SELECT it', binding.source, quote_ident(column_name),
      quote_literal(binding.name), quote_ident(mad.caller_role())
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  kinds := CASE WHEN legacy_type IN ('real', 'double precision') OR legacy_type LIKE 'numeric%' THEN ARRAY['real'] ELSE ARRAY['text', 'integer'] END;
  SELECT c.value ->> 'name' INTO chosen FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n)
  WHERE (set_legacy_column.output IS NULL AND c.value ->> 'type' = ANY (kinds)) OR c.value ->> 'name' = set_legacy_column.output
  ORDER BY n LIMIT 1;
  IF chosen IS NULL OR NOT (SELECT c.value ->> 'type' FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'name' = chosen) = ANY (ARRAY['text', 'integer', 'real']) THEN
    RAISE EXCEPTION 'Prediction table % has no output column % to compare with the legacy column % (%); its outputs are %.',
      quote_literal(binding.name), coalesce(quote_ident(output), 'of kind ' || array_to_string(kinds, ' or ')), quote_ident(column_name), legacy_type,
      (SELECT string_agg(format('%I (%s)', c.value ->> 'name', c.value ->> 'type'), ', ') FROM jsonb_array_elements(binding.columns) c)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE mad.prediction_tables p SET legacy_column = set_legacy_column.column_name, legacy_output = chosen WHERE p.name = binding.name;
END
$$;

-- The statement that computes a table's agreement with its legacy column (NULL: it names none), built from names only
-- (no value is read here): per arm and version, the served rows (champion, canary) and the shadow's, over rows scored
-- without error whose legacy value is not NULL. A definer only because the helpers it quotes names with are nobody's.
CREATE FUNCTION mad.legacy_statement(table_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  compared text;
  joined text;
  statement text;
BEGIN
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = legacy_statement.table_name;
  IF NOT FOUND OR binding.legacy_column IS NULL THEN
    RETURN NULL;
  END IF;
  compared := CASE WHEN (SELECT c.value ->> 'type' FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'name' = binding.legacy_output) <> 'real'
    THEN format('avg(CASE WHEN o.%I::text = l.%I::text THEN 1.0 ELSE 0.0 END)::double precision, NULL::double precision', binding.legacy_output, binding.legacy_column)
    ELSE format('NULL::double precision, avg(abs(o.%I - l.%I::double precision))::double precision', binding.legacy_output, binding.legacy_column) END;
  joined := mad.key_list(binding, 'l.%1$I = o.%1$I', ' AND ');
  statement := format(
    'SELECT o.arm, o.model_version, count(*), %s FROM %s l JOIN mad_out.%I o ON %s WHERE o.error IS NULL AND l.%I IS NOT NULL GROUP BY 1, 2',
    compared, mad.qualified_name(binding.source), binding.name, joined, binding.legacy_column);
  IF pg_catalog.to_regclass(format('mad_out.%I', binding.name || '__shadow')) IS NOT NULL THEN
    statement := statement || format(
      ' UNION ALL SELECT ''shadow''::text, o.shadow_version, count(*), %s FROM %s l JOIN mad_out.%I o ON %s WHERE o.error IS NULL AND l.%I IS NOT NULL GROUP BY 1, 2',
      compared, mad.qualified_name(binding.source), binding.name || '__shadow', joined, binding.legacy_column);
  END IF;
  RETURN statement || ' ORDER BY 1, 2';
END
$$;

-- The prediction tables served through model@alias that name a legacy column.
CREATE FUNCTION mad.legacy_tables(model text, alias text) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT p.name FROM mad.prediction_tables p
  WHERE split_part(p.model, '@', 1) = legacy_tables.model AND mad.reference_alias(p.model) = legacy_tables.alias
    AND p.legacy_column IS NOT NULL AND pg_catalog.to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
  ORDER BY p.name;
$$;

-- A table's agreement with its legacy column, per arm and version. SECURITY INVOKER: the source, mad_out.<name> and
-- its shadow are read with the caller's own rights (insufficient_privilege otherwise; row security applies).
CREATE FUNCTION mad.legacy_agreement(table_name text)
RETURNS TABLE (arm text, model_version int, rows_compared bigint, share_equal double precision, mean_absolute_difference double precision)
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  statement text := mad.legacy_statement(table_name);
BEGIN
  IF statement IS NOT NULL THEN
    RETURN QUERY EXECUTE statement;
  END IF;
END
$$;

-- The report's legacy agreement: each table served through model@alias that names a legacy column and that the
-- caller may read (one it may not is left out, not refused, so the report stays readable). SECURITY INVOKER.
CREATE FUNCTION mad.deployment_legacy(model text, alias text)
RETURNS TABLE (prediction_table text, arm text, model_version int, rows_compared bigint, share_equal double precision, mean_absolute_difference double precision)
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  served text;
BEGIN
  FOR served IN SELECT mad.legacy_tables(deployment_legacy.model, deployment_legacy.alias) LOOP
    BEGIN
      RETURN QUERY SELECT served, g.* FROM mad.legacy_agreement(served) g;
    EXCEPTION WHEN insufficient_privilege THEN
      NULL;  -- the caller may not read this table's source or predictions
    END;
  END LOOP;
END
$$;

-- 025_1's mad.deployment_report, with two columns added at the end (025_3): each arm's agreement with the legacy
-- columns of the tables served through it.
CREATE OR REPLACE VIEW mad.deployment_report AS
  SELECT d.model, d.alias, arms.arm, arms.version, arms.percent, coalesce(sum(r.rows_scored), 0)::bigint AS rows_scored,
         coalesce(sum(r.rows_failed), 0)::bigint AS rows_failed,
         CASE WHEN sum(r.rows_scored) > 0 THEN sum(r.rows_failed)::double precision / sum(r.rows_scored) END AS error_rate,
         d.steps, d.next_step_at, d.seed,
         agreement.share_equal, agreement.mean_absolute_difference,
         CASE WHEN arms.arm = 'shadow' THEN coalesce(
           (SELECT p.shadow_error FROM mad.prediction_tables p
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias AND p.shadow_error IS NOT NULL
            ORDER BY p.shadow_error_at DESC LIMIT 1),
           (SELECT j.shadow_error FROM mad.jobs j JOIN mad.prediction_tables p ON p.name = j.prediction_table
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias
              AND j.shadow_version = arms.version AND j.shadow_error IS NOT NULL
            ORDER BY j.id DESC LIMIT 1)) END AS shadow_error,
         legacy.share_equal AS legacy_share_equal, legacy.mean_absolute_difference AS legacy_mean_absolute_difference  -- 025_3
  FROM mad.deployments d
  JOIN mad.aliases a USING (model, alias)
  CROSS JOIN LATERAL (VALUES ('champion', a.version, 100 - coalesce(d.canary_percent, 0)),
                             ('canary', d.canary_version, d.canary_percent),
                             ('shadow', d.shadow_version, d.shadow_percent)) arms (arm, version, percent)
  LEFT JOIN LATERAL mad.deployment_rows(d.model, d.alias) r ON r.arm = arms.arm AND r.model_version = arms.version
  LEFT JOIN LATERAL (SELECT sum(g.share_equal * g.rows_compared) / nullif(sum(g.rows_compared) FILTER (WHERE g.share_equal IS NOT NULL), 0) AS share_equal,
                            sum(g.mean_absolute_difference * g.rows_compared) / nullif(sum(g.rows_compared) FILTER (WHERE g.mean_absolute_difference IS NOT NULL), 0) AS mean_absolute_difference
                     FROM mad.shadow_agreement(d.model, d.alias) g
                     WHERE arms.arm = 'shadow' AND g.shadow_version = arms.version) agreement ON true
  LEFT JOIN LATERAL (SELECT sum(l.share_equal * l.rows_compared) / nullif(sum(l.rows_compared) FILTER (WHERE l.share_equal IS NOT NULL), 0) AS share_equal,
                            sum(l.mean_absolute_difference * l.rows_compared) / nullif(sum(l.rows_compared) FILTER (WHERE l.mean_absolute_difference IS NOT NULL), 0) AS mean_absolute_difference
                     FROM mad.deployment_legacy(d.model, d.alias) l
                     WHERE l.arm = arms.arm AND l.model_version = arms.version) legacy ON true
  WHERE arms.version IS NOT NULL
  GROUP BY d.model, d.alias, arms.arm, arms.version, arms.percent, d.steps, d.next_step_at, d.seed,
           agreement.share_equal, agreement.mean_absolute_difference, legacy.share_equal, legacy.mean_absolute_difference;

REVOKE ALL ON FUNCTION mad.set_legacy_column(text, text, text), mad.legacy_statement(text), mad.legacy_tables(text, text),
  mad.legacy_agreement(text), mad.deployment_legacy(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.set_legacy_column(text, text, text) TO mad_admin, mad_user;
-- Names only (the agreement functions call them as their caller).
GRANT EXECUTE ON FUNCTION mad.legacy_statement(text), mad.legacy_tables(text, text) TO mad_admin, mad_user;
-- Invoker functions: they read only what the caller may read.
GRANT EXECUTE ON FUNCTION mad.legacy_agreement(text), mad.deployment_legacy(text, text) TO mad_admin, mad_user;
