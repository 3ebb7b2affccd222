-- Agreement between champion and canary (issue 15, docs/DEPLOYMENTS.md "Canary agreement"). The champion and the
-- canary serve different keys, so no row is scored by both. A refresh under a canary therefore also scores a sample
-- of the canary's keys with the champion, and keeps only sums on the job (rows compared, rows whose label outputs all
-- equal, the sum of absolute differences of each value output), never a second stored row per key. The report
-- computes the canary arm's share_equal and mean_absolute_difference from them over the deployment's done jobs.
--
-- The sample: a canary key is compared when mad.bucket(seed # 6364136223846793005, key_text) < agreement_percent / 100,
-- the published sticky hash under the deployment's seed XOR a fixed salt, so the sample is reproducible in SQL, the
-- same keys on both stores, and independent of which keys the canary serves. agreement_percent is the setting
-- canary_agreement_percent (10 by default), fixed on the job when it starts, as its canary is.

INSERT INTO mad.settings (name, value, description) VALUES
  ('canary_agreement_percent', '10', 'The percent of a canary''s keys a refresh also scores with the champion, for the report''s agreement between them (0: none).');

ALTER TABLE mad.jobs ADD COLUMN agreement_percent double precision, ADD COLUMN agreement_rows bigint NOT NULL DEFAULT 0,
  ADD COLUMN agreement_equal bigint, ADD COLUMN agreement_differences jsonb NOT NULL DEFAULT '{}';
GRANT SELECT (agreement_percent, agreement_rows, agreement_equal, agreement_differences) ON mad.jobs TO mad_user;

-- A new job under a canary fixes its sample percent (a trigger, so 017's mad.refresh stays as it is).
CREATE FUNCTION mad.job_agreement() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  setting text := (SELECT s.value FROM mad.settings s WHERE s.name = 'canary_agreement_percent');
  percent double precision;
BEGIN
  IF NEW.canary_version IS NULL THEN
    RETURN NEW;
  END IF;
  BEGIN
    percent := coalesce(setting, '10')::double precision;
  EXCEPTION WHEN invalid_text_representation THEN
    percent := NULL;
  END;
  IF percent IS NULL OR percent < 0 OR percent > 100 THEN
    RAISE EXCEPTION 'The setting canary_agreement_percent is %, not a percent in [0, 100], so the refresh of % did not start.', quote_literal(setting), NEW.prediction_table
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Fix it with: UPDATE mad.settings SET value = ''10'' WHERE name = ''canary_agreement_percent'';';
  END IF;
  NEW.agreement_percent := percent;
  RETURN NEW;
END
$$;
CREATE TRIGGER jobs_agreement BEFORE INSERT ON mad.jobs FOR EACH ROW EXECUTE FUNCTION mad.job_agreement();

-- The sidecar, in a task's transaction: the task's sums, added to its job's. rows_equal is NULL when the table has
-- no label output; differences holds one sum per value output (real), by name. Fenced like record_shadow: only the
-- task's current lease counts.
CREATE FUNCTION mad.record_agreement(task_id bigint, lease_token uuid, rows_compared bigint, rows_equal bigint, differences jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  UPDATE mad.jobs j SET agreement_rows = j.agreement_rows + record_agreement.rows_compared,
                        agreement_equal = CASE WHEN record_agreement.rows_equal IS NULL THEN j.agreement_equal
                                               ELSE coalesce(j.agreement_equal, 0) + record_agreement.rows_equal END,
                        agreement_differences = coalesce((
                          SELECT jsonb_object_agg(n.name, coalesce((j.agreement_differences ->> n.name)::double precision, 0)
                                                          + coalesce((record_agreement.differences ->> n.name)::double precision, 0))
                          FROM (SELECT jsonb_object_keys(j.agreement_differences) UNION SELECT jsonb_object_keys(record_agreement.differences)) n (name)), '{}')
  FROM mad.tasks t
  WHERE t.id = record_agreement.task_id AND t.job_id = j.id AND t.lease_token = record_agreement.lease_token AND t.state = 'running';
END
$$;

REVOKE ALL ON FUNCTION mad.job_agreement(), mad.record_agreement(bigint, uuid, bigint, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.record_agreement(bigint, uuid, bigint, bigint, jsonb) TO mad_sidecar;

-- 025_3's mad.deployment_report, with the canary arm's agreement from its jobs' sums, and rows_compared at the end
-- (the rows each arm's agreement is over: the shadow's joined rows, the canary's sampled ones).
CREATE OR REPLACE VIEW mad.deployment_report AS
  SELECT d.model, d.alias, arms.arm, arms.version, arms.percent, coalesce(sum(r.rows_scored), 0)::bigint AS rows_scored,
         coalesce(sum(r.rows_failed), 0)::bigint AS rows_failed,
         CASE WHEN sum(r.rows_scored) > 0 THEN sum(r.rows_failed)::double precision / sum(r.rows_scored) END AS error_rate,
         d.steps, d.next_step_at, d.seed,
         coalesce(agreement.share_equal, canary.share_equal) AS share_equal,
         coalesce(agreement.mean_absolute_difference, canary.mean_absolute_difference) AS mean_absolute_difference,
         CASE WHEN arms.arm = 'shadow' THEN coalesce(
           (SELECT p.shadow_error FROM mad.prediction_tables p
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias AND p.shadow_error IS NOT NULL
            ORDER BY p.shadow_error_at DESC LIMIT 1),
           (SELECT j.shadow_error FROM mad.jobs j JOIN mad.prediction_tables p ON p.name = j.prediction_table
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias
              AND j.shadow_version = arms.version AND j.shadow_error IS NOT NULL
            ORDER BY j.id DESC LIMIT 1)) END AS shadow_error,
         legacy.share_equal AS legacy_share_equal, legacy.mean_absolute_difference AS legacy_mean_absolute_difference,  -- 025_3
         coalesce(agreement.rows_compared, canary.rows_compared) AS rows_compared  -- 043_2
  FROM mad.deployments d
  JOIN mad.aliases a USING (model, alias)
  CROSS JOIN LATERAL (VALUES ('champion', a.version, 100 - coalesce(d.canary_percent, 0)),
                             ('canary', d.canary_version, d.canary_percent),
                             ('shadow', d.shadow_version, d.shadow_percent)) arms (arm, version, percent)
  LEFT JOIN LATERAL mad.deployment_rows(d.model, d.alias) r ON r.arm = arms.arm AND r.model_version = arms.version
  LEFT JOIN LATERAL (SELECT sum(g.share_equal * g.rows_compared) / nullif(sum(g.rows_compared) FILTER (WHERE g.share_equal IS NOT NULL), 0) AS share_equal,
                            sum(g.mean_absolute_difference * g.rows_compared) / nullif(sum(g.rows_compared) FILTER (WHERE g.mean_absolute_difference IS NOT NULL), 0) AS mean_absolute_difference,
                            sum(g.rows_compared)::bigint AS rows_compared
                     FROM mad.shadow_agreement(d.model, d.alias) g
                     WHERE arms.arm = 'shadow' AND g.shadow_version = arms.version) agreement ON true
  -- The canary's: the done jobs of this deployment (its seed) under this canary version, on the tables served through it.
  LEFT JOIN LATERAL (SELECT sum(j.agreement_equal)::double precision / nullif(sum(j.agreement_rows) FILTER (WHERE j.agreement_equal IS NOT NULL), 0) AS share_equal,
                            sum(v.difference) / nullif(sum(j.agreement_rows) FILTER (WHERE v.difference IS NOT NULL), 0) AS mean_absolute_difference,
                            nullif(sum(j.agreement_rows), 0)::bigint AS rows_compared
                     FROM mad.jobs j
                     JOIN mad.prediction_tables p ON p.name = j.prediction_table
                     -- Each job's summed absolute differences, averaged over its value outputs (as shadow_agreement averages them).
                     CROSS JOIN LATERAL (SELECT sum(e.value::double precision) / count(*) AS difference FROM jsonb_each_text(j.agreement_differences) e) v
                     WHERE arms.arm = 'canary' AND j.state = 'done' AND j.seed = d.seed AND j.canary_version = arms.version
                       AND split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias) canary ON true
  LEFT JOIN LATERAL (SELECT sum(l.share_equal * l.rows_compared) / nullif(sum(l.rows_compared) FILTER (WHERE l.share_equal IS NOT NULL), 0) AS share_equal,
                            sum(l.mean_absolute_difference * l.rows_compared) / nullif(sum(l.rows_compared) FILTER (WHERE l.mean_absolute_difference IS NOT NULL), 0) AS mean_absolute_difference
                     FROM mad.deployment_legacy(d.model, d.alias) l
                     WHERE l.arm = arms.arm AND l.model_version = arms.version) legacy ON true
  WHERE arms.version IS NOT NULL
  GROUP BY d.model, d.alias, arms.arm, arms.version, arms.percent, d.steps, d.next_step_at, d.seed,
           agreement.share_equal, agreement.mean_absolute_difference, agreement.rows_compared,
           canary.share_equal, canary.mean_absolute_difference, canary.rows_compared,
           legacy.share_equal, legacy.mean_absolute_difference;
