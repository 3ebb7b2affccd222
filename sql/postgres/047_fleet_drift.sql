-- Drift of the fleet (docs/SYNC.md "Drift of the fleet"): a device's profile counts flow back, so mad.drift (and the
-- histograms, the gauges and the drift gate, which read the same counts) covers the fleet; `SET mad.device = …`
-- narrows mad.drift and mad.drift_histograms to one device.
--
-- * A pull copies each pulled version's baselines (mad.device_baselines, for mad_device: mad.baselines holds its
--   source's quantiles and is mad_admin's and the sidecar's to read, as 008 keeps the ONNX bytes from mad_user), so
--   the device counts into the central bins.
-- * A push stages the device's counts as TOTALS per (prediction table, version, hour, column, bin), with the bins the
--   device counted into, and mad.finish_push_profile_counts keeps each device's totals in mad.edge_profile_counts and
--   adds only what grew since that device's last push into mad.profile_counts. Pushing twice adds nothing, an open
--   hour pushed again adds only its new rows, and a push never lowers a count (a total below the one kept is kept at
--   the larger: counts only grow on a device). Staging is 029_1's: tables made and owned here, INSERT for the
--   caller, no device column, the device claimed (and so locked until commit) by claim_device.
-- * A count is added only when the central prediction table exists, is bound to the same model, and the version has
--   a baseline whose bins are the device's (same type, edges, categories); other counts are skipped and returned with
--   the reason, so the device can say what to do (pull again, create the table). A version this database does not
--   hold is refused whole (no_data_found, the words of finish_push), as are counts that cannot be counts (negative,
--   a bin outside the baseline's, a window not on the hour, one cell twice).
-- * A baseline replaced centrally (mad.store_baseline deletes the counts made in its old bins) drops the fleet's kept
--   totals of those bins too (trigger below), so the next push starts that column's totals again from zero.

CREATE TABLE mad.edge_profile_counts (
  device text NOT NULL,
  prediction_table text NOT NULL,
  model text NOT NULL,
  version int NOT NULL,
  window_start timestamptz NOT NULL CHECK (window_start = date_trunc('hour', window_start)),
  kind text NOT NULL CHECK (kind IN ('input', 'output')),
  column_name text NOT NULL,
  bin int NOT NULL CHECK (bin >= -1),
  count bigint NOT NULL CHECK (count >= 0),
  pushed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (device, prediction_table, window_start, version, kind, column_name, bin)
);
-- The trigger's delete when a baseline is replaced.
CREATE INDEX edge_profile_counts_baseline ON mad.edge_profile_counts (model, version, kind, column_name);

-- As mad.profile_counts (018), only mad_admin reads counts directly, and a device its own (row security, as 024).
GRANT SELECT ON mad.edge_profile_counts TO mad_admin, mad_device;
ALTER TABLE mad.edge_profile_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY edge_profile_counts_read ON mad.edge_profile_counts FOR SELECT USING (
  pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR EXISTS (SELECT FROM mad.devices d JOIN pg_catalog.pg_roles r ON r.rolname = d.owner
             WHERE d.id = edge_profile_counts.device AND pg_catalog.pg_has_role(r.oid, 'MEMBER')));

CREATE FUNCTION mad.drop_edge_profile_counts() RETURNS trigger
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  DELETE FROM mad.edge_profile_counts e
  WHERE e.model = OLD.model AND e.version = OLD.version AND e.kind = OLD.kind AND e.column_name = OLD.column_name;
  RETURN OLD;
END
$$;
CREATE TRIGGER baselines_drop_edge_profile_counts AFTER DELETE ON mad.baselines
  FOR EACH ROW EXECUTE FUNCTION mad.drop_edge_profile_counts();

-- A pull's baselines: a ready version's bins, for a device to count into.
CREATE FUNCTION mad.device_baselines(model text, version int)
RETURNS TABLE (kind text, column_name text, type text, edges double precision[], categories text[], counts bigint[],
               null_count bigint, spread double precision, source text, reference text, created_by text, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_device', 'pull baselines to a device');
  IF NOT EXISTS (SELECT FROM mad.model_versions v WHERE v.model = device_baselines.model AND v.version = device_baselines.version AND v.status = 'ready') THEN
    RAISE EXCEPTION 'Model % has no ready version %; %.', quote_literal(device_baselines.model), device_baselines.version,
      mad.describe_versions(device_baselines.model) USING ERRCODE = 'no_data_found';
  END IF;
  RETURN QUERY
  SELECT b.kind, b.column_name, b.type, b.edges, b.categories, b.counts, b.null_count, b.spread, b.source, b.reference, b.created_by, b.created_at
  FROM mad.baselines b WHERE b.model = device_baselines.model AND b.version = device_baselines.version
  ORDER BY b.kind, b.column_name;
END
$$;

-- Stages a push's profile counts: pg_temp.mad_push_profile_counts (the totals) and pg_temp.mad_push_baselines (the
-- bins they were counted into, per model, version, kind and column), made and owned here, INSERT (COPY) for the
-- caller only.
CREATE FUNCTION mad.begin_push_profile_counts(device text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_device', 'push device profile counts');
  PERFORM mad.claim_device(device);
  IF pg_catalog.to_regclass('pg_temp.mad_push_profile_counts') IS NOT NULL OR pg_catalog.to_regclass('pg_temp.mad_push_baselines') IS NOT NULL THEN
    RAISE EXCEPTION 'Profile counts are already staged in this transaction (pg_temp.mad_push_profile_counts or pg_temp.mad_push_baselines exists).'
      USING ERRCODE = 'object_in_use', HINT = 'Finish them with mad.finish_push_profile_counts, or roll back and begin again.';
  END IF;
  CREATE TEMP TABLE mad_push_profile_counts (
    prediction_table text NOT NULL,
    model text NOT NULL,
    version int NOT NULL,
    window_start timestamptz NOT NULL,
    kind text NOT NULL,
    column_name text NOT NULL,
    bin int NOT NULL,
    count bigint NOT NULL
  ) ON COMMIT DROP;
  CREATE TEMP TABLE mad_push_baselines (
    model text NOT NULL,
    version int NOT NULL,
    kind text NOT NULL,
    column_name text NOT NULL,
    type text NOT NULL,
    edges double precision[],
    categories text[]
  ) ON COMMIT DROP;
  EXECUTE format('GRANT INSERT ON pg_temp.mad_push_profile_counts, pg_temp.mad_push_baselines TO %I', mad.caller_role());
END
$$;

-- A staged table, once checked to be the one mad.begin_push_profile_counts made: an ordinary table owned by the
-- definer, not one (or a view) the caller planted under its name, whose functions would run with the definer's rights.
CREATE FUNCTION mad.staged_profile_counts(staged_name text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  staged regclass := pg_catalog.to_regclass('pg_temp.' || staged_name);
BEGIN
  IF staged IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = staged AND c.relkind = 'r' AND c.relowner =
                                     (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)) THEN
    RAISE EXCEPTION 'No profile counts are staged in this transaction.' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'Call mad.begin_push_profile_counts(device) first, then COPY the counts into pg_temp.mad_push_profile_counts and their bins into pg_temp.mad_push_baselines, in the same transaction.';
  END IF;
  RETURN staged;
END
$$;

-- Keeps the staged totals for the device and adds what grew into mad.profile_counts (see the header). Returns one row
-- per prediction table, version and outcome: status 'added' (counts: how many were new), or the reason its counts
-- were skipped ('unknown_table', 'other_model', 'no_baseline', 'other_bins'; counts: how many were skipped), with
-- the columns concerned. A device's embedded predict() counts its rows under 'online:<model>' (as the sidecar's online
-- doors do centrally, 026_2): such a name has no prediction table, and its counts are taken when the name's model is
-- the staged model (else 'other_model'), so mad.drift('online:<model>') covers the fleet's in-process scoring too.
CREATE FUNCTION mad.finish_push_profile_counts(device text)
RETURNS TABLE (prediction_table text, version int, status text, columns text[], counts bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp SET work_mem = '64MB' AS $$
#variable_conflict use_column
DECLARE
  device_id text;
  bad text;
BEGIN
  PERFORM mad.require_role('mad_device', 'push device profile counts');
  device_id := mad.claim_device(device);
  PERFORM mad.staged_profile_counts('mad_push_profile_counts');
  PERFORM mad.staged_profile_counts('mad_push_baselines');

  SELECT format('%s version %s, %s %s, bin %s at %s: %s', s.model, s.version, s.kind, s.column_name, s.bin, s.window_start, s.count) INTO bad
  FROM pg_temp.mad_push_profile_counts s
  WHERE s.count < 0 OR s.bin < -1 OR s.kind NOT IN ('input', 'output') OR s.window_start <> date_trunc('hour', s.window_start)
     OR s.window_start IN ('infinity', '-infinity')
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'The push holds a count that cannot be one (%): nothing was added.', bad USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Counts are whole numbers >= 0 in bins >= -1 (-1: nulls), of kind input or output, per hour (window_start on the hour).';
  END IF;
  SELECT format('%s, %s version %s, %s %s, bin %s at %s', s.prediction_table, s.model, s.version, s.kind, s.column_name, s.bin, s.window_start) INTO bad
  FROM pg_temp.mad_push_profile_counts s
  GROUP BY s.prediction_table, s.model, s.version, s.window_start, s.kind, s.column_name, s.bin HAVING count(*) > 1
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'The push holds one count twice (%): nothing was added.', bad USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Stage each hour, column and bin once, with the device''s total in it.';
  END IF;

  SELECT string_agg(format('%s version %s', s.model, s.version), ', ' ORDER BY s.model, s.version) INTO bad
  FROM (SELECT DISTINCT c.model, c.version FROM pg_temp.mad_push_profile_counts c) s
  WHERE NOT EXISTS (SELECT FROM mad.model_versions v WHERE v.model = s.model AND v.version = s.version);
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'The push names versions this database does not hold (%): nothing was added.', bad
      USING ERRCODE = 'no_data_found',
            HINT = 'Push the models here first, or pull the device from the database it was scored against.';
  END IF;

  -- The baselines counted into stay as they are until this push commits (store_baseline waits), so no count lands
  -- in bins replaced meanwhile. Same order as store_baseline (baselines, then counts): waits, no deadlock.
  PERFORM FROM mad.baselines b
  WHERE (b.model, b.version) IN (SELECT DISTINCT c.model, c.version FROM pg_temp.mad_push_profile_counts c)
  FOR SHARE OF b;

  SELECT format('%s version %s, %s %s: bin %s, the baseline has bins -1 to %s', s.model, s.version, s.kind, s.column_name, s.bin, cardinality(b.counts) - 1) INTO bad
  FROM pg_temp.mad_push_profile_counts s
  JOIN mad.baselines b ON b.model = s.model AND b.version = s.version AND b.kind = s.kind AND b.column_name = s.column_name
  JOIN pg_temp.mad_push_baselines d ON d.model = s.model AND d.version = s.version AND d.kind = s.kind AND d.column_name = s.column_name
  WHERE d.type = b.type AND d.edges IS NOT DISTINCT FROM b.edges AND d.categories IS NOT DISTINCT FROM b.categories
    AND s.bin > cardinality(b.counts) - 1
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'The push holds a count outside its baseline''s bins (%): nothing was added.', bad USING ERRCODE = 'invalid_parameter_value';
  END IF;

  RETURN QUERY
  WITH judged AS (
    SELECT s.*, CASE
      WHEN starts_with(s.prediction_table, 'online:') AND substr(s.prediction_table, 8) <> s.model THEN 'other_model'
      WHEN NOT starts_with(s.prediction_table, 'online:') AND t.name IS NULL THEN 'unknown_table'
      WHEN NOT starts_with(s.prediction_table, 'online:') AND split_part(t.model, '@', 1) <> s.model THEN 'other_model'
      WHEN b.model IS NULL THEN 'no_baseline'
      WHEN d.model IS NULL OR d.type <> b.type OR d.edges IS DISTINCT FROM b.edges OR d.categories IS DISTINCT FROM b.categories THEN 'other_bins'
      ELSE 'added' END AS judged_status
    FROM pg_temp.mad_push_profile_counts s
    LEFT JOIN mad.prediction_tables t ON t.name = s.prediction_table
    LEFT JOIN mad.baselines b ON b.model = s.model AND b.version = s.version AND b.kind = s.kind AND b.column_name = s.column_name
    LEFT JOIN pg_temp.mad_push_baselines d ON d.model = s.model AND d.version = s.version AND d.kind = s.kind AND d.column_name = s.column_name),
  grown AS (
    -- The device is claimed (its row locked) until commit, so its kept totals cannot change under this statement.
    SELECT j.prediction_table, j.model, j.version, j.window_start, j.kind, j.column_name, j.bin, j.count, j.count - coalesce(e.count, 0) AS delta
    FROM judged j
    LEFT JOIN mad.edge_profile_counts e ON e.device = device_id AND e.prediction_table = j.prediction_table AND e.window_start = j.window_start
      AND e.version = j.version AND e.kind = j.kind AND e.column_name = j.column_name AND e.bin = j.bin
    WHERE j.judged_status = 'added' AND j.count > coalesce(e.count, 0)),
  kept AS (
    INSERT INTO mad.edge_profile_counts AS e (device, prediction_table, model, version, window_start, kind, column_name, bin, count)
    SELECT device_id, g.prediction_table, g.model, g.version, g.window_start, g.kind, g.column_name, g.bin, g.count FROM grown g
    ORDER BY g.prediction_table, g.window_start, g.version, g.kind, g.column_name, g.bin
    ON CONFLICT (device, prediction_table, window_start, version, kind, column_name, bin) DO UPDATE SET count = excluded.count, pushed_at = now()),
  added AS (
    -- In primary-key order, as mad.add_profile_counts: two writers of the same bins wait rather than deadlock.
    INSERT INTO mad.profile_counts AS p (prediction_table, version, window_start, kind, column_name, bin, count)
    SELECT g.prediction_table, g.version, g.window_start, g.kind, g.column_name, g.bin, g.delta FROM grown g
    ORDER BY g.prediction_table, g.window_start, g.version, g.kind, g.column_name, g.bin
    ON CONFLICT (prediction_table, window_start, version, kind, column_name, bin) DO UPDATE SET count = p.count + excluded.count)
  SELECT j.prediction_table, j.version, j.judged_status,
         array_agg(DISTINCT j.column_name ORDER BY j.column_name),
         CASE WHEN j.judged_status = 'added'
              THEN coalesce((SELECT sum(g.delta) FROM grown g WHERE g.prediction_table = j.prediction_table AND g.version = j.version), 0)
              ELSE sum(j.count) END::bigint
  FROM judged j  -- kept and added run to completion whether read or not
  GROUP BY j.prediction_table, j.version, j.judged_status
  ORDER BY 1, 2, 3;

  TRUNCATE pg_temp.mad_push_profile_counts, pg_temp.mad_push_baselines;
  UPDATE mad.devices d SET last_push_at = now() WHERE d.id = device_id;
END
$$;

-- 018's mad.drift_counts, reading one device's pushed counts when `mad.device` is set (changed lines marked 047):
-- mad.drift and mad.drift_histograms (026_2), which call it, then show that device's drift against the same
-- baselines, as mad.served_predictions (029_2) narrows the outcome reports. Unset: mad.profile_counts, which holds the
-- central doors' counts and every device's.
CREATE OR REPLACE FUNCTION mad.drift_counts(binding mad.prediction_tables, since timestamptz, "window" interval)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, kind text, column_name text, type text,
               edges double precision[], categories text[], source text, baseline bigint[], baseline_null bigint, spread double precision,
               current bigint[], current_null bigint)
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  WITH windows AS (SELECT * FROM mad.drift_windows(since, "window")),
  one_device AS (SELECT nullif(pg_catalog.current_setting('mad.device', true), '') AS id), -- 047
  counts AS ( -- 047
    SELECT p.prediction_table, p.version, p.window_start, p.kind, p.column_name, p.bin, p.count
    FROM mad.profile_counts p WHERE (SELECT id FROM one_device) IS NULL
    UNION ALL
    SELECT e.prediction_table, e.version, e.window_start, e.kind, e.column_name, e.bin, e.count
    FROM mad.edge_profile_counts e WHERE e.device = (SELECT id FROM one_device)),
  counted AS (
    SELECT w.window_start, c.version, c.kind, c.column_name, c.bin, sum(c.count)::bigint AS n
    FROM counts c JOIN windows w ON c.window_start >= w.window_start AND c.window_start < w.window_end -- 047
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

REVOKE ALL ON FUNCTION mad.drop_edge_profile_counts(), mad.device_baselines(text, integer), mad.begin_push_profile_counts(text),
  mad.staged_profile_counts(text), mad.finish_push_profile_counts(text),
  mad.drift_counts(mad.prediction_tables, timestamp with time zone, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.device_baselines(text, integer), mad.begin_push_profile_counts(text), mad.finish_push_profile_counts(text) TO mad_device;
