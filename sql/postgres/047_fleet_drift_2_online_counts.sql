-- Drift of the fleet, part 2: a device's embedded predict() counts its rows under 'online:<model>' (SQLite, as the
-- sidecar's online doors do under that name centrally, 026_2), and a push now adds them to the central
-- 'online:<model>' counts, so mad.drift('online:<model>') (mad_admin) covers the fleet's in-process scoring too. Such a
-- name has no prediction table: its counts are taken when the name's model is the staged model (else 'other_model'),
-- against that model's baselines as any other. 047's mad.finish_push_profile_counts otherwise (changed lines marked 047_2; the file is named to sort after 047_fleet_drift.sql).

CREATE OR REPLACE FUNCTION mad.finish_push_profile_counts(device text)
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
      WHEN starts_with(s.prediction_table, 'online:') AND substr(s.prediction_table, 8) <> s.model THEN 'other_model' -- 047_2
      WHEN NOT starts_with(s.prediction_table, 'online:') AND t.name IS NULL THEN 'unknown_table' -- 047_2
      WHEN NOT starts_with(s.prediction_table, 'online:') AND split_part(t.model, '@', 1) <> s.model THEN 'other_model' -- 047_2
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
