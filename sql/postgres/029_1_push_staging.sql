-- A push through COPY (docs/SYNC.md "Push"): mad.ingest_predictions parses JSON batches twice (the version check,
-- then the insert) and ran at 0.22x a bare COPY of the same rows. A push now stages its rows with binary COPY and
-- moves them with one INSERT ... SELECT, in the caller's transaction:
--
--   SELECT mad.begin_push('shop-17');                 -- claims the device, creates pg_temp.mad_push_rows
--   COPY pg_temp.mad_push_rows (...) FROM STDIN (FORMAT BINARY);
--   SELECT mad.finish_push('shop-17');                -- version check, INSERT ... ON CONFLICT DO NOTHING, row count
--
-- Why this is safe for a definer:
-- * The staging table has no device column: finish_push writes every staged row under the device it claims (the
--   caller's own, claim_device), so no staged row can land under another device's id.
-- * begin_push creates the table itself (owned by mad's owner, ON COMMIT DROP) and grants the caller INSERT only:
--   no trigger, rule or policy of the caller's can ride along. finish_push reads it only after checking that
--   pg_temp.mad_push_rows is still that table (an ordinary table owned by the definer, not a view or table the
--   caller made in its place, whose functions would run with the definer's rights). A temporary table is visible to
--   its own session only, so no other login can stage rows into it.
-- * Rows are only added (ON CONFLICT DO NOTHING): pushing twice adds nothing and no one overwrites a pushed row.

CREATE FUNCTION mad.begin_push(device text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_device', 'push device predictions');
  PERFORM mad.claim_device(device);
  IF pg_catalog.to_regclass('pg_temp.mad_push_rows') IS NOT NULL THEN
    RAISE EXCEPTION 'A push is already staged in this transaction (pg_temp.mad_push_rows exists).'
      USING ERRCODE = 'object_in_use', HINT = 'Finish it with mad.finish_push, or roll back and begin again.';
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

-- The staged table, once checked to be the one begin_push made (see the header).
CREATE FUNCTION mad.staged_push_rows() RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  staged regclass := pg_catalog.to_regclass('pg_temp.mad_push_rows');
BEGIN
  IF staged IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = staged AND c.relkind = 'r' AND c.relowner =
                                     (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)) THEN
    RAISE EXCEPTION 'No push is staged in this transaction.' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'Call mad.begin_push(device) first, then COPY the rows into pg_temp.mad_push_rows, in the same transaction.';
  END IF;
  RETURN staged;
END
$$;

-- Moves the staged rows into mad.edge_predictions for the device, refused whole when any names a version this database
-- does not hold or an arm it does not know; returns the number of rows added (rows already pushed are skipped).
CREATE FUNCTION mad.finish_push(device text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
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
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS added = ROW_COUNT;
  TRUNCATE pg_temp.mad_push_rows;

  UPDATE mad.devices d SET last_push_at = now() WHERE d.id = device_id;
  RETURN added;
END
$$;

REVOKE ALL ON FUNCTION mad.begin_push(text), mad.staged_push_rows(), mad.finish_push(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.begin_push(text), mad.finish_push(text) TO mad_device;
