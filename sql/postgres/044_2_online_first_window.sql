-- Drift monitoring (issue 16): online requests learn a first window too.
--
-- Since 021 a version without a baseline falls back to its first window of traffic, but only a refresh or a stream
-- stored one: the prediction log writer counted online requests (026_2) only into a profile another door had
-- stored. Now the writer learns one as well: it keeps the values of a version's first online requests in memory
-- until it holds first_window_rows of them (setting, 100: a log batch can be a single request, and bins fitted on a
-- handful of values would call every later window drifted), then stores the reference fitted on them
-- (ModelAsData.Core.Monitoring.ProfileBuilder, the same rules) here, with table_name 'online:<model>', and counts
-- those rows into it, in the transaction of that log batch. As for the other doors, a profile of that kind already
-- stored (a baseline, or another door's or sidecar's first window) wins, and the writer counts into it instead.

INSERT INTO mad.settings (name, value, description) VALUES
  ('first_window_rows', '100', 'Online requests of a version without a baseline: how many the prediction log writer keeps before it stores their first-window reference.')
ON CONFLICT (name) DO NOTHING;

-- 021's mad.store_first_window, also for 'online:<model>' (changed lines marked 044). Its source is recorded as
-- 'online:<model>': no table stands for the requests, so mad.drift_histograms (to_regclass gives NULL) shows its
-- bins as numbers only, to every caller, as for a source the caller may not read.
CREATE OR REPLACE FUNCTION mad.store_first_window(table_name text, model_version int, profile_kind text, profiles jsonb) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  stored int;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'store a first-window reference');
  IF table_name LIKE 'online:%' THEN -- 044
    binding.name := table_name;
    binding.model := substr(table_name, length('online:') + 1);
    binding.source := NULL;
    PERFORM mad.require_model(binding.model);
  ELSE
    SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = table_name;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'There is no prediction table %.', quote_literal(table_name) USING ERRCODE = 'undefined_object';
    END IF;
  END IF;
  IF profile_kind IS NULL OR profile_kind NOT IN ('input', 'output') OR jsonb_typeof(profiles) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'A first-window reference is a kind (''input'' or ''output'') and an array of profiles.' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM mad.baselines b WHERE b.model = split_part(binding.model, '@', 1) AND b.version = model_version AND b.kind = profile_kind) THEN
    RETURN 0;
  END IF;
  INSERT INTO mad.baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source, reference)
  SELECT split_part(binding.model, '@', 1), model_version, profile_kind, p ->> 'column', p ->> 'type',
         CASE WHEN p ->> 'type' = 'numeric' THEN ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(p -> 'edges') WITH ORDINALITY e(x, n) ORDER BY n) END,
         CASE WHEN p ->> 'type' = 'category' THEN ARRAY(SELECT x FROM jsonb_array_elements_text(p -> 'categories') WITH ORDINALITY e(x, n) ORDER BY n) END,
         ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p -> 'counts') WITH ORDINALITY e(x, n) ORDER BY n),
         (p ->> 'null_count')::bigint, coalesce((p ->> 'spread')::float8, 0), coalesce(binding.source::text, table_name), 'first_window' -- 044
  FROM jsonb_array_elements(profiles) p
  ON CONFLICT (model, version, kind, column_name) DO NOTHING;
  GET DIAGNOSTICS stored = ROW_COUNT;
  RETURN stored;
END
$$;
