-- Shadow scoring in batch refresh (issue 15, docs/DEPLOYMENTS.md): a prediction table served through an alias with a
-- shadow gets mad_out.<name>__shadow, the shadow version's predictions for the sampled keys (mad.bucket(seed, key) <
-- shadow_percent / 100, the canary's rule) beside the version that served each key, written by the same refresh job
-- and swapped in with it. The served table never depends on the shadow: a shadow that fails to load or score is
-- recorded on the job (jobs.shadow_error) and the served refresh goes on.
--
-- The rows live in mad_shadow.<name>, a schema only the sidecars write and nobody reads; mad_out.<name>__shadow is a
-- view over it that shows the last done job's rows and raises for a caller who may not SELECT mad_out.<name>, checked
-- at every query (not copied at the swap), so a REVOKE on the served table takes the shadow with it at once. The view
-- names the served table only by text, so the swap's DROP of mad_out.<name> does not depend on it.

CREATE SCHEMA IF NOT EXISTS mad_shadow;
REVOKE ALL ON SCHEMA mad_shadow FROM PUBLIC;
GRANT USAGE ON SCHEMA mad_shadow TO mad_sidecar;

-- A job fixes its shadow when it starts, as it fixes its canary (017); the sidecars record what it scored.
ALTER TABLE mad.jobs ADD COLUMN shadow_version int, ADD COLUMN shadow_percent double precision, ADD COLUMN shadow_seed bigint,
  ADD COLUMN shadow_rows bigint NOT NULL DEFAULT 0, ADD COLUMN shadow_error text;
GRANT SELECT (shadow_version, shadow_percent, shadow_seed, shadow_rows, shadow_error) ON mad.jobs TO mad_user;

-- The gate of every shadow view: true, or insufficient_privilege unless the caller may SELECT the served table. Not
-- SECURITY DEFINER: has_table_privilege must judge the caller. Constant arguments make it the view's one-time filter,
-- so it raises even when the shadow holds no row.
CREATE FUNCTION mad.require_shadow_reader(table_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  served regclass := pg_catalog.to_regclass(format('mad_out.%I', table_name));
BEGIN
  IF served IS NULL OR NOT pg_catalog.has_table_privilege(served, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied for mad_out.%: its shadow is readable by the readers of mad_out.% only.', quote_ident(table_name || '__shadow'), quote_ident(table_name)
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN true;
END
$$;

-- Creates the shadow's storage and view for a binding when they do not exist yet. Columns: the keys, shadow_version,
-- the same output columns, served_version, scored_at, error; job (storage only) keeps a running job's rows out of view.
CREATE FUNCTION mad.ensure_shadow(binding mad.prediction_tables) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  outputs text := (SELECT string_agg(format('%I %s', c.value ->> 'name', mad.output_sql_type(c.value ->> 'type')), ', ' ORDER BY n)
                   FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n));
  output_names text := (SELECT string_agg(format('s.%I', c.value ->> 'name'), ', ' ORDER BY n)
                        FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n));
  view_name text := binding.name || '__shadow';
BEGIN
  IF length(view_name) > 63 THEN
    RAISE EXCEPTION 'Prediction table % has a name too long for its shadow table mad_out.% (63 bytes at most).', quote_literal(binding.name), view_name
      USING ERRCODE = 'name_too_long';
  END IF;
  IF pg_catalog.to_regclass(format('mad_shadow.%I', binding.name)) IS NULL THEN
    EXECUTE format('CREATE TABLE mad_shadow.%I (%s, shadow_version int NOT NULL, %s, served_version int, scored_at timestamptz NOT NULL, error text, job bigint NOT NULL)',
                   binding.name, mad.key_list(binding, '%I %2$s'), outputs);
    EXECUTE format('CREATE INDEX ON mad_shadow.%I (job)', binding.name);
    EXECUTE format('GRANT SELECT, INSERT ON mad_shadow.%I TO mad_sidecar', binding.name);
  END IF;
  IF pg_catalog.to_regclass(format('mad_out.%I', view_name)) IS NULL THEN
    EXECUTE format('CREATE VIEW mad_out.%I WITH (security_barrier) AS SELECT %s, s.shadow_version, %s, s.served_version, s.scored_at, s.error '
                   'FROM mad_shadow.%I s WHERE s.job = (SELECT p.last_job FROM mad.prediction_tables p WHERE p.name = %L) AND mad.require_shadow_reader(%L)',
                   view_name, mad.key_list(binding, 's.%I'), output_names, binding.name, binding.name, binding.name);
    -- Any mad role may try; mad.require_shadow_reader lets through only the served table's readers.
    EXECUTE format('GRANT SELECT ON mad_out.%I TO mad_admin, mad_user', view_name);
  END IF;
END
$$;

-- A new job fixes the shadow of the deployment it is served through (a trigger, so 017's mad.refresh stays as it is).
CREATE FUNCTION mad.job_shadow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  deployed mad.deployments%ROWTYPE;
BEGIN
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = NEW.prediction_table;
  SELECT d.* INTO deployed FROM mad.deployments d
  WHERE d.model = split_part(binding.model, '@', 1) AND d.alias = mad.reference_alias(binding.model) AND d.shadow_version IS NOT NULL;
  IF FOUND THEN
    PERFORM mad.ensure_shadow(binding);
    NEW.shadow_version := deployed.shadow_version;
    NEW.shadow_percent := deployed.shadow_percent;
    NEW.shadow_seed := deployed.seed;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER jobs_shadow BEFORE INSERT ON mad.jobs FOR EACH ROW EXECUTE FUNCTION mad.job_shadow();

-- A job swapped in: older jobs' shadow rows go (the view already shows only the new job's).
CREATE FUNCTION mad.job_shadow_done() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  IF pg_catalog.to_regclass(format('mad_shadow.%I', NEW.prediction_table)) IS NOT NULL THEN
    EXECUTE format('DELETE FROM mad_shadow.%I s WHERE s.job <> $1', NEW.prediction_table) USING NEW.id;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER jobs_shadow_done AFTER UPDATE OF state ON mad.jobs FOR EACH ROW
  WHEN (NEW.state = 'done' AND OLD.state IS DISTINCT FROM 'done') EXECUTE FUNCTION mad.job_shadow_done();

-- A dropped prediction table takes its shadow with it.
CREATE FUNCTION mad.drop_shadow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  EXECUTE format('DROP VIEW IF EXISTS mad_out.%I', OLD.name || '__shadow');
  EXECUTE format('DROP TABLE IF EXISTS mad_shadow.%I', OLD.name);
  RETURN OLD;
END
$$;
CREATE TRIGGER prediction_tables_drop_shadow AFTER DELETE ON mad.prediction_tables FOR EACH ROW EXECUTE FUNCTION mad.drop_shadow();

-- The sidecar, in a task's transaction: the shadow rows it wrote, or why the shadow could not score (the served rows
-- are written either way). Fenced like complete_task: only the task's current lease counts.
CREATE FUNCTION mad.record_shadow(task_id bigint, lease_token uuid, shadow_rows bigint, shadow_error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  UPDATE mad.jobs j SET shadow_rows = j.shadow_rows + record_shadow.shadow_rows,
                        shadow_error = coalesce(record_shadow.shadow_error, j.shadow_error)
  FROM mad.tasks t
  WHERE t.id = record_shadow.task_id AND t.job_id = j.id AND t.lease_token = record_shadow.lease_token AND t.state = 'running';
END
$$;

-- Agreement of each prediction table's shadow (its last done job) with the served rows, per model@alias: rows
-- compared, the share whose label columns (text, integer) all equal the served ones, and the mean absolute
-- difference of the value columns (real), over rows both scored without error.
CREATE FUNCTION mad.shadow_agreement(model text, alias text)
RETURNS TABLE (prediction_table text, shadow_version int, rows_compared bigint, share_equal double precision, mean_absolute_difference double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables;
  labels text;
  values_ text;
  value_count int;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p
                 WHERE split_part(p.model, '@', 1) = shadow_agreement.model AND mad.reference_alias(p.model) = shadow_agreement.alias
                   AND pg_catalog.to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
                   AND pg_catalog.to_regclass(format('mad_shadow.%I', p.name)) IS NOT NULL
                 ORDER BY p.name LOOP
    SELECT string_agg(format('s.%1$I IS NOT DISTINCT FROM o.%1$I', c.value ->> 'name'), ' AND ')
    INTO labels FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'type' IN ('text', 'integer');
    SELECT string_agg(format('abs(s.%1$I - o.%1$I)', c.value ->> 'name'), ' + '), count(*)
    INTO values_, value_count FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'type' = 'real';
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, s.shadow_version, count(*), %s, %s FROM mad_shadow.%I s JOIN mad_out.%I o ON %s '
      'WHERE s.job = $1 AND s.error IS NULL AND o.error IS NULL GROUP BY s.shadow_version',
      binding.name,
      CASE WHEN labels IS NULL THEN 'NULL::double precision' ELSE format('avg(CASE WHEN %s THEN 1.0 ELSE 0.0 END)::double precision', labels) END,
      CASE WHEN values_ IS NULL THEN 'NULL::double precision' ELSE format('avg((%s) / %s)::double precision', values_, value_count) END,
      binding.name, binding.name, mad.key_list(binding, 's.%1$I = o.%1$I', ' AND '))
    USING binding.last_job;
  END LOOP;
END
$$;

-- 017's mad.deployment_rows, with one change (marked 020): the shadow arm's rows come from the shadow tables.
CREATE OR REPLACE FUNCTION mad.deployment_rows(model text, alias text)
RETURNS TABLE (prediction_table text, arm text, model_version int, rows_scored bigint, rows_failed bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p
                 WHERE split_part(p.model, '@', 1) = deployment_rows.model AND mad.reference_alias(p.model) = deployment_rows.alias
                   AND to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
                 ORDER BY p.name LOOP
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, o.arm, o.model_version, count(*), count(o.error) FROM mad_out.%I o GROUP BY o.arm, o.model_version ORDER BY 2, 3',
      binding.name, binding.name);
    IF to_regclass(format('mad_shadow.%I', binding.name)) IS NOT NULL THEN  -- 020
      RETURN QUERY EXECUTE format(
        'SELECT %L::text, ''shadow''::text, s.shadow_version, count(*), count(s.error) FROM mad_shadow.%I s WHERE s.job = $1 GROUP BY s.shadow_version',
        binding.name, binding.name) USING binding.last_job;
    END IF;
  END LOOP;
END
$$;

-- 017's mad.deployment_report, with two columns added at the end (020): the shadow arm's agreement with the served
-- rows (labels: share equal; values: mean absolute difference), and the last shadow error of a job served through it.
CREATE OR REPLACE VIEW mad.deployment_report AS
  SELECT d.model, d.alias, arms.arm, arms.version, arms.percent, coalesce(sum(r.rows_scored), 0)::bigint AS rows_scored,
         coalesce(sum(r.rows_failed), 0)::bigint AS rows_failed,
         CASE WHEN sum(r.rows_scored) > 0 THEN sum(r.rows_failed)::double precision / sum(r.rows_scored) END AS error_rate,
         d.steps, d.next_step_at, d.seed,
         agreement.share_equal, agreement.mean_absolute_difference,
         CASE WHEN arms.arm = 'shadow' THEN
           (SELECT j.shadow_error FROM mad.jobs j JOIN mad.prediction_tables p ON p.name = j.prediction_table
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias
              AND j.shadow_version = arms.version AND j.shadow_error IS NOT NULL
            ORDER BY j.id DESC LIMIT 1) END AS shadow_error
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
  WHERE arms.version IS NOT NULL
  GROUP BY d.model, d.alias, arms.arm, arms.version, arms.percent, d.steps, d.next_step_at, d.seed,
           agreement.share_equal, agreement.mean_absolute_difference;

REVOKE ALL ON FUNCTION mad.require_shadow_reader(text), mad.ensure_shadow(mad.prediction_tables), mad.job_shadow(),
  mad.job_shadow_done(), mad.drop_shadow(), mad.record_shadow(bigint, uuid, bigint, text), mad.shadow_agreement(text, text) FROM PUBLIC;
-- Every shadow view calls it as its reader.
GRANT EXECUTE ON FUNCTION mad.require_shadow_reader(text) TO mad_admin, mad_user, mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.record_shadow(bigint, uuid, bigint, text) TO mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.shadow_agreement(text, text) TO mad_admin;
