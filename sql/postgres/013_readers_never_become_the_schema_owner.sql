-- The sidecar never becomes the schema owner, nor a role that can make roles or skip row security.
--
-- Since 007 mad_reader (granted to mad_sidecar) is granted every binding owner that is not a superuser, so a
-- mad_sidecar login can SET ROLE to any of them. When the owner was the role that installed mad (the owner of schema
-- mad and of every SECURITY DEFINER function; on managed PostgreSQL a CREATEROLE login), a sidecar login could
-- redefine the definers or create roles; with an owner that has CREATEROLE, BYPASSRLS or REPLICATION (or is a member
-- of such a role) it gained those. Now such an owner is never granted to mad_reader:
-- * mad.reader_refusal says why a role may not be read as (NULL for a plain role): it owns (or is a member of a role
--   that owns) schema mad, mad_out, mad_build or mad_outbox or an object in one; it has (or is a member of a role
--   that has) CREATEROLE, BYPASSRLS or REPLICATION; or it is a member of pg_execute_server_program,
--   pg_write_server_files or pg_read_server_files (a superuser's reach through the server's files). Superusers keep
--   007's rule (never granted; read only by a superuser sidecar, which bypasses everything anyway).
-- * The trigger sync_readers refuses such an owner when a binding is created (mad.create_prediction_table) or handed
--   over (UPDATE mad.prediction_tables SET owner), with 42501 and a hint to use a plain role with SELECT on the source.
-- * mad.sync_reader revokes the membership of such an owner; this file runs it over every owner, so an existing grant
--   goes, and those bindings fail their reads with the same message (as superuser-owned ones already do).
-- * mad.reader_of (behind read_role, which the refresh runs at every read, and stream_plan) checks again at read
--   time: a role can gain CREATEROLE after it was bound, and then the honest sidecar refuses to read as it. Its
--   membership of mad_reader goes at the next sync of that owner: mad.refresh of one of its tables (committed with
--   the job, which then fails saying why), or a binding of it created, dropped or handed over.

-- Why the sidecar may not read as role_name, or NULL when it may (superusers are reaches_superuser's business).
CREATE FUNCTION mad.reader_refusal(role_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  WITH mad_schemas AS (
    SELECT n.oid, n.nspname, n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('mad', 'mad_out', 'mad_build', 'mad_outbox')),
  owned AS (
    SELECT s.nspowner AS owner, format('schema %I', s.nspname) AS what, 0 AS rank FROM mad_schemas s
    UNION ALL
    SELECT p.proowner, format('function %s', p.oid::regprocedure), 1 FROM pg_catalog.pg_proc p JOIN mad_schemas s ON s.oid = p.pronamespace
    UNION ALL
    SELECT c.relowner, format('%s', c.oid::regclass), 1 FROM pg_catalog.pg_class c JOIN mad_schemas s ON s.oid = c.relnamespace
    UNION ALL
    SELECT t.typowner, format('type %s', t.oid::regtype), 1 FROM pg_catalog.pg_type t JOIN mad_schemas s ON s.oid = t.typnamespace),
  owners AS (
    SELECT o.owner, (pg_catalog.array_agg(o.what ORDER BY o.rank, o.what))[1] AS what FROM owned o GROUP BY o.owner)
  SELECT coalesce(
    (SELECT CASE WHEN r.rolname = role_name THEN 'it owns ' ELSE format('it is a member of %I, which owns ', r.rolname) END || o.what
     FROM owners o JOIN pg_catalog.pg_roles r ON r.oid = o.owner
     WHERE pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER')
     ORDER BY r.rolname <> role_name, r.rolname LIMIT 1),
    (SELECT CASE WHEN r.rolname = role_name THEN 'it has ' ELSE format('it is a member of %I, which has ', r.rolname) END
            || pg_catalog.array_to_string(ARRAY[CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END,
                                                CASE WHEN r.rolreplication THEN 'REPLICATION' END], ', ')
     FROM pg_catalog.pg_roles r
     WHERE (r.rolcreaterole OR r.rolbypassrls OR r.rolreplication) AND pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER')
     ORDER BY r.rolname <> role_name, r.rolname LIMIT 1),
    (SELECT format('it is a member of %I, which reaches the server''s files', r.rolname)
     FROM pg_catalog.pg_roles r
     WHERE r.rolname IN ('pg_execute_server_program', 'pg_write_server_files', 'pg_read_server_files')
       AND pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER')
     ORDER BY r.rolname LIMIT 1));
$$;

-- The refusal, raised: names the table, the role and why, and says what to do instead.
CREATE FUNCTION mad.refuse_reader(table_name text, role_name text, reason text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  source text := (SELECT mad.qualified_name(p.source) FROM mad.prediction_tables p WHERE p.name = table_name);
BEGIN
  RAISE EXCEPTION 'Prediction table % may not belong to role %: %, and the sidecar, which reads its source as its owner, would act with that.',
                  quote_literal(table_name), quote_ident(role_name), reason
    USING ERRCODE = 'insufficient_privilege',
          HINT = format('Create the table as (or hand it to) a plain role that has SELECT on %s, e.g. CREATE ROLE scores_owner NOLOGIN IN ROLE mad_user; GRANT SELECT ON %s TO scores_owner; then SET ROLE scores_owner before mad.create_prediction_table, or (as the schema owner) UPDATE mad.prediction_tables SET owner = ''scores_owner'' WHERE name = %L;',
                        coalesce(source, 'the source'), coalesce(source, '<source>'), table_name);
END
$$;

-- As in 007, and an owner the sidecar may not read as (reader_refusal) is never granted, and revoked if it was.
CREATE OR REPLACE FUNCTION mad.sync_reader(role_name text) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  role_id oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = role_name);
  needed boolean;
  granted boolean;
BEGIN
  IF role_id IS NULL OR role_name IN ('mad_reader', 'mad_sidecar') THEN
    RETURN;
  END IF;
  needed := EXISTS (SELECT FROM mad.prediction_tables p WHERE p.owner = role_name)
            AND NOT mad.reaches_superuser(role_name)
            AND mad.reader_refusal(role_name) IS NULL
            AND NOT pg_catalog.pg_has_role(role_name, 'mad_reader', 'MEMBER');
  granted := EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE m.roleid = role_id AND m.member = 'mad_reader'::regrole);
  IF needed AND NOT granted THEN
    BEGIN
      EXECUTE format('GRANT %I TO mad_reader', role_name);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE EXCEPTION 'The sidecar could not be allowed to read as role %: % may not grant it (%).', quote_ident(role_name), quote_ident(current_user), SQLERRM
        USING ERRCODE = 'insufficient_privilege',
              HINT = format('A role with ADMIN OPTION on %I (or a superuser) can run: GRANT %I TO mad_reader;', role_name, role_name);
    END;
  ELSIF granted AND NOT needed THEN
    EXECUTE format('REVOKE %I FROM mad_reader', role_name);
  END IF;
END
$$;

-- As in 007, and a binding created for, or handed to, an owner the sidecar may not read as is refused (a superuser
-- owner stays allowed, as before: only a superuser sidecar reads it).
CREATE OR REPLACE FUNCTION mad.sync_readers() RETURNS trigger
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  reason text;
BEGIN
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND OLD.owner IS DISTINCT FROM NEW.owner) THEN
    IF NOT mad.reaches_superuser(NEW.owner) THEN
      reason := mad.reader_refusal(NEW.owner);
      IF reason IS NOT NULL THEN
        PERFORM mad.refuse_reader(NEW.name, NEW.owner, reason);
      END IF;
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM mad.sync_reader(OLD.owner);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM mad.sync_reader(NEW.owner);
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.owner IS DISTINCT FROM NEW.owner AND pg_catalog.to_regclass(format('mad_out.%I', NEW.name)) IS NOT NULL THEN
    IF OLD.owner <> (SELECT pg_catalog.pg_get_userbyid(c.relowner)::text FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(format('mad_out.%I', NEW.name)))
       AND EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = OLD.owner) THEN
      EXECUTE format('REVOKE ALL ON mad_out.%I FROM %I CASCADE', NEW.name, OLD.owner);
    END IF;
    PERFORM mad.grant_predictions(NEW);
  END IF;
  RETURN NULL;
END
$$;

-- As in 007, and an owner the sidecar may not read as is refused at every read, unless the sidecar is a superuser
-- (it bypasses everything anyway, as it does for a superuser owner).
CREATE OR REPLACE FUNCTION mad.reader_of(binding mad.prediction_tables) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  reason text;
BEGIN
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = binding.owner) THEN
    RAISE EXCEPTION 'Prediction table % belongs to role %, which no longer exists, so no one reads its source.', quote_literal(binding.name), quote_ident(binding.owner)
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The schema owner can hand it over: UPDATE mad.prediction_tables SET owner = ''<role>'' WHERE name = %L;', binding.name);
  END IF;
  IF NOT mad.reaches_superuser(session_user) THEN
    IF mad.reaches_superuser(binding.owner) THEN
      RAISE EXCEPTION 'Prediction table % belongs to role %, a superuser (or a member of one): the sidecar never reads as a superuser.', quote_literal(binding.name), quote_ident(binding.owner)
        USING ERRCODE = 'insufficient_privilege',
              HINT = format('Hand it to a role that is not: UPDATE mad.prediction_tables SET owner = ''<role>'' WHERE name = %L; (as the schema owner)', binding.name);
    END IF;
    reason := mad.reader_refusal(binding.owner);
    IF reason IS NOT NULL THEN
      PERFORM mad.refuse_reader(binding.name, binding.owner, reason);
    END IF;
  END IF;
  IF NOT pg_catalog.pg_has_role(session_user, binding.owner, 'MEMBER') THEN
    RAISE EXCEPTION 'The sidecar login % cannot read as role %, the owner of prediction table %.', quote_ident(session_user), quote_ident(binding.owner), quote_literal(binding.name)
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('Sidecar logins need role mad_sidecar (GRANT mad_sidecar TO %I;), and mad_reader the owner (GRANT %I TO mad_reader;).', session_user, binding.owner);
  END IF;
  RETURN binding.owner;
END
$$;

-- As in 007, and the owner's mad_reader grant is synced first (revoked if it may no longer be read as).
CREATE OR REPLACE FUNCTION mad.refresh(name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(refresh.name);
  model_name text := split_part(binding.model, '@', 1);
  model_version int;
  signature jsonb;
  running bigint;
  new_job bigint;
  build text;
  stale record;
  missing text;
BEGIN
  PERFORM mad.require_binding_owner(binding, 'refresh ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'refresh ' || quote_ident(binding.name));
  -- An owner that gained CREATEROLE (or the like) since it was bound loses its mad_reader grant here, committed with
  -- the job, whose reads then fail saying why (mad.reader_of).
  PERFORM mad.sync_reader(binding.owner);
  -- Serialise refreshes of one table, so "already running" is decided once.
  PERFORM FROM mad.prediction_tables p WHERE p.name = binding.name FOR UPDATE;
  SELECT j.id INTO running FROM mad.jobs j WHERE j.prediction_table = binding.name AND j.state = 'running';
  IF running IS NOT NULL THEN
    RETURN running;
  END IF;
  FOR stale IN SELECT j.build_table FROM mad.jobs j
               WHERE j.prediction_table = binding.name AND j.state = 'failed' AND to_regclass(j.build_table) IS NOT NULL LOOP
    EXECUTE format('DROP TABLE %s', stale.build_table);
  END LOOP;

  model_version := mad.resolve_reference(binding.model);
  signature := mad.ready_signature(model_name, model_version);
  IF (SELECT jsonb_agg(jsonb_build_array(c.value -> 'type', c.value -> 'output', c.value -> 'offset')) FROM jsonb_array_elements(signature -> 'columns') c)
     IS DISTINCT FROM (SELECT jsonb_agg(jsonb_build_array(c.value -> 'type', c.value -> 'output', c.value -> 'offset')) FROM jsonb_array_elements(binding.columns) c) THEN
    RAISE EXCEPTION 'Model %@% decodes into columns (%) that differ from mad_out.%''s (%): create a new prediction table for it.',
      model_name, model_version, (SELECT string_agg(c.value ->> 'name', ', ') FROM jsonb_array_elements(signature -> 'columns') c),
      binding.name, (SELECT string_agg(c.value ->> 'name', ', ') FROM jsonb_array_elements(binding.columns) c)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT string_agg(quote_ident(c), ', ') INTO missing FROM unnest(binding.key_columns || binding.feature_columns) c
  WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = binding.source AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION '% no longer has column(s) %, which prediction table % reads; its columns: %.', binding.source, missing,
      quote_literal(binding.name), mad.describe_columns(binding.source) USING ERRCODE = 'undefined_column';
  END IF;
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);

  INSERT INTO mad.jobs (prediction_table, model, version, build_table, tasks_total, rows_total, planned)
  VALUES (binding.name, model_name, model_version, '', 1, 0, false) RETURNING id INTO new_job;
  build := format('mad_build.%I', 'job_' || new_job);
  -- With the primary key from the start: tasks maintain it as they write, overlapped with scoring, instead of one
  -- index build after the last task; it also refuses a key written twice at once.
  EXECUTE format('CREATE TABLE %s (LIKE mad_out.%I INCLUDING INDEXES)', build, binding.name);
  EXECUTE format('GRANT SELECT, INSERT ON %s TO mad_sidecar', build);
  INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (new_job, 0, NULL, NULL);
  UPDATE mad.jobs j SET build_table = build WHERE j.id = new_job;
  PERFORM pg_notify('mad_jobs', json_build_object('event', 'created', 'job', new_job, 'table', binding.name)::text);
  RETURN new_job;
END
$$;

-- Existing grants of owners the sidecar may not read as go now.
SELECT mad.sync_reader(o.owner) FROM (SELECT DISTINCT p.owner FROM mad.prediction_tables p) o;

-- EXECUTE grants are the gate (docs/SECURITY.md): both run only inside the definers and triggers above.
REVOKE ALL ON FUNCTION mad.reader_refusal(text), mad.refuse_reader(text, text, text) FROM PUBLIC;
