-- A million-row push (029_1) spent most of its time outside the COPY: two foreign-key checks per row, each a query
-- of its own, and primary-key inserts in the device's order, which split index pages all over the index.
--
-- * 023's foreign keys go. Every row now comes through mad.finish_push, which has claimed the device (its row is
--   locked until commit) and checked each distinct version once; neither devices nor versions are ever deleted (no
--   function does, nobody holds DELETE), and mad_history's rows name their versions without a foreign key too.
-- * finish_push inserts in primary-key order, so the index grows at its right edge; work_mem is raised for it so a
--   million staged rows sort in memory. Otherwise it is 029_1's.

ALTER TABLE mad.edge_predictions DROP CONSTRAINT edge_predictions_device_fkey, DROP CONSTRAINT edge_predictions_model_version_fkey;

CREATE OR REPLACE FUNCTION mad.finish_push(device text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp SET work_mem = '256MB' AS $$
DECLARE
  device_id text;
  unknown text;
  added bigint;
BEGIN
  PERFORM mad.require_role('mad_device', 'push device predictions');
  device_id := mad.claim_device(device);
  PERFORM mad.staged_push_rows();

  -- One pass over the distinct versions, not one lookup per row.
  SELECT string_agg(format('%s version %s', s.model, s.version), ', ' ORDER BY s.model, s.version) INTO unknown
  FROM (SELECT DISTINCT r.model, r.version FROM pg_temp.mad_push_rows r) s
  WHERE NOT EXISTS (SELECT FROM mad.model_versions v WHERE v.model = s.model AND v.version = s.version);
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION 'The push names versions this database does not hold (%): nothing was added.', unknown
      USING ERRCODE = 'no_data_found',
            HINT = 'Push the models here first, or pull the device from the database it was scored against.';
  END IF;

  INSERT INTO mad.edge_predictions (device, prediction_table, key, model, version, arm, outputs, scored_at)
  SELECT device_id, r.prediction_table, r.key, r.model, r.version, r.arm, r.outputs, r.scored_at
  FROM pg_temp.mad_push_rows r
  ORDER BY r.prediction_table, r.key, r.scored_at
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS added = ROW_COUNT;
  TRUNCATE pg_temp.mad_push_rows;

  UPDATE mad.devices d SET last_push_at = now() WHERE d.id = device_id;
  RETURN added;
END
$$;
