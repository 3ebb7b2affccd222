-- The device push pair of 029_1/029_3, mad.begin_push(device) / mad.finish_push(device), shared its names with the
-- chunked model push of 030, mad.begin_push(name, size_bytes, chunks, metadata) / mad.finish_push(model, version,
-- sha256), which means something else and is granted to someone else (mad_admin, not mad_device). One word per
-- concept: the device pair is now mad.begin_device_push / mad.finish_device_push, as begin_push_outcomes /
-- finish_push_outcomes already name what they push. The bodies are 029_1's begin_push and 029_3's finish_push, with
-- the texts that name them renamed; the old device overloads go, so no caller can reach the old words.
--
--   SELECT mad.begin_device_push('shop-17');          -- claims the device, creates pg_temp.mad_push_rows
--   COPY pg_temp.mad_push_rows (...) FROM STDIN (FORMAT BINARY);
--   SELECT mad.finish_device_push('shop-17');         -- version check, INSERT ... ON CONFLICT DO NOTHING, row count

DROP FUNCTION mad.begin_push(text);
DROP FUNCTION mad.finish_push(text);

CREATE FUNCTION mad.begin_device_push(device text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_device', 'push device predictions');
  PERFORM mad.claim_device(device);
  IF pg_catalog.to_regclass('pg_temp.mad_push_rows') IS NOT NULL THEN
    RAISE EXCEPTION 'A push is already staged in this transaction (pg_temp.mad_push_rows exists).'
      USING ERRCODE = 'object_in_use', HINT = 'Finish it with mad.finish_device_push, or roll back and begin again.';
  END IF;
  CREATE TEMP TABLE mad_push_rows (
    prediction_table text NOT NULL,
    key text NOT NULL,
    model text NOT NULL,
    version int NOT NULL,
    arm text NOT NULL,
    outputs jsonb NOT NULL,
    scored_at timestamptz NOT NULL
  ) ON COMMIT DROP;
  EXECUTE format('GRANT INSERT ON pg_temp.mad_push_rows TO %I', mad.caller_role());
END
$$;

-- The staged table, once checked to be the one begin_device_push made (029_1's header says why).
CREATE OR REPLACE FUNCTION mad.staged_push_rows() RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  staged regclass := pg_catalog.to_regclass('pg_temp.mad_push_rows');
BEGIN
  IF staged IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = staged AND c.relkind = 'r' AND c.relowner =
                                     (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)) THEN
    RAISE EXCEPTION 'No push is staged in this transaction.' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'Call mad.begin_device_push(device) first, then COPY the rows into pg_temp.mad_push_rows, in the same transaction.';
  END IF;
  RETURN staged;
END
$$;

-- Moves the staged rows into mad.edge_predictions for the device, refused whole when any names a version this database
-- does not hold; returns the number of rows added (rows already pushed are skipped). Primary-key order and work_mem
-- as 029_3 says.
CREATE FUNCTION mad.finish_device_push(device text) RETURNS bigint
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

-- As 029_1 granted the old pair: mad_device only (staged_push_rows keeps its grants: nobody).
REVOKE ALL ON FUNCTION mad.begin_device_push(text), mad.finish_device_push(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.begin_device_push(text), mad.finish_device_push(text) TO mad_device;
