-- Code in a source runs as the binding's owner, never as someone else (issue 12, item 1; DESIGN.md "Security model").
--
-- Before this file mad.refresh, a SECURITY DEFINER function, counted and sampled the source itself, so a function in a
-- view (or a policy, a domain CHECK, a cast) ran as the schema owner; and the sidecar read sources with its own
-- rights, so the same code ran as the sidecar. Now:
-- * No definer function reads a user's relation. mad.refresh records the job, its build table and one unplanned task
--   covering every key, and returns at once. The sidecar that claims that task plans the job: reading as the owner it
--   counts and samples the source, and hands the total and the sampled key bounds to mad.plan_job (mad_sidecar only,
--   fenced on the task's lease), which splits the task into key ranges. A caller of mad.refresh cannot forge a plan,
--   and the planning read is a read like any other (grants, RLS, a view's functions as its owner's code).
-- * The sidecar reads every source as the role that owns the binding (mad.prediction_tables.owner): SET LOCAL ROLE
--   sent in the same round trip as the read, undone before any protocol call. It may, through the new role
--   mad_reader: NOLOGIN NOINHERIT, granted to mad_sidecar, and granted each binding owner (a trigger on
--   mad.prediction_tables keeps that list: an owner is granted while a binding has it, revoked when none has; DROP
--   ROLE of an owner drops the membership with it). SET ROLE follows any membership chain, but privileges are only
--   inherited through INHERIT roles, so a sidecar login holds none of the owners' rights until it switches.
--   An owner that is, or can become, a superuser is never granted: such a binding is read only by a sidecar that is
--   itself a superuser, and a non-superuser sidecar fails its reads with a message saying to hand the table over.
-- * Key columns are of built-in types only (no domain, no user type, so no user CHECK or cast runs when the capture
--   triggers, definers, copy keys): checked by create_prediction_table, refresh, watch and at every plan; while a
--   table is watched a never-firing trigger on its key columns makes PostgreSQL refuse to change their type.
-- * A prediction table belongs to its owner: mad_out.<name> is readable by its owner (WITH GRANT OPTION, to grant it
--   on) and mad_admin, no longer by every mad_user. A refresh's swap carries the table's grants over to the new
--   table: those the schema owner made in the function, and those its owner made through the sidecar, which acts as
--   the owner for them (mad.carried_grants), so the grantor stays the owner and its REVOKE keeps working.
-- * The swap waits at most swap_lock_timeout_ms for a reader's lock, then fails the job naming the table and the
--   sessions that hold it (issue 12, item 8).

-- The role is cluster-wide: databases migrated at the same moment must not trip over each other (an ALTER, COMMENT
-- or GRANT of a role that another transaction is changing fails with "tuple concurrently updated"), so each step runs
-- only when it is still needed, and a concurrent one's duplicate is ignored.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mad_reader') THEN
    BEGIN
      CREATE ROLE mad_reader NOLOGIN NOINHERIT;
      COMMENT ON ROLE mad_reader IS 'ModelAsData: a member of every prediction table owner, without their rights (NOINHERIT): the sidecar SETs ROLE through it to read a source as its owner.';
    EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
      NULL; -- created by a concurrent migration of another database
    END;
  END IF;
  IF (SELECT r.rolinherit FROM pg_catalog.pg_roles r WHERE r.rolname = 'mad_reader') THEN
    ALTER ROLE mad_reader NOINHERIT; -- its privileges must never pass through it
  END IF;
  IF NOT pg_catalog.pg_has_role('mad_sidecar', 'mad_reader', 'MEMBER') THEN
    BEGIN
      GRANT mad_reader TO mad_sidecar;
    EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
      NULL; -- granted by a concurrent migration
    END;
  END IF;
END
$$;

INSERT INTO mad.settings (name, value, description) VALUES
  ('swap_lock_timeout_ms', '5000', 'How long a refresh waits to swap its new table in while other sessions hold a lock on mad_out.<name>, before the job fails.')
ON CONFLICT (name) DO NOTHING;

-- A job made by mad.refresh is planned by the sidecar that claims its first task (mad.plan_job).
ALTER TABLE mad.jobs ADD COLUMN planned boolean NOT NULL DEFAULT true;

-- Grants on a replaced mad_out table that its owner (or another role the sidecar may act as) made: the sidecar makes
-- them again, as that role, in the transaction of the swap. Read only by definers.
CREATE TABLE mad.carried_grants (
  job_id bigint NOT NULL REFERENCES mad.jobs (id) ON DELETE CASCADE,
  ordinal int NOT NULL,
  grantor text NOT NULL,
  statement text NOT NULL,
  PRIMARY KEY (job_id, ordinal)
);
REVOKE ALL ON mad.carried_grants FROM PUBLIC;

-- The key types a binding may use: built-in types whose casts and checks are PostgreSQL's own code.
CREATE FUNCTION mad.key_type_allowed(key_type regtype) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT key_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype, 'real'::regtype,
                      'double precision'::regtype, 'text'::regtype, 'character varying'::regtype, 'character'::regtype,
                      'uuid'::regtype, 'date'::regtype, 'timestamp without time zone'::regtype,
                      'timestamp with time zone'::regtype, 'boolean'::regtype);
$$;

-- Raises unless each key column of the source (now) and of the binding (as recorded) is of a built-in type.
CREATE FUNCTION mad.require_builtin_keys(source regclass, key_columns text[], key_types text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  hit record;
BEGIN
  FOR hit IN
    SELECT u.k AS name, coalesce(pg_catalog.format_type(a.atttypid, a.atttypmod), key_types[u.n]) AS type_name,
           a.atttypid IS NOT NULL AND mad.key_type_allowed(a.atttypid::regtype)
             AND (key_types IS NULL OR pg_catalog.to_regtype(key_types[u.n]) IS NOT NULL AND mad.key_type_allowed(pg_catalog.to_regtype(key_types[u.n]))) AS allowed
    FROM unnest(key_columns) WITH ORDINALITY u(k, n)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = source AND a.attname = u.k AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF NOT hit.allowed THEN
      RAISE EXCEPTION 'Key column % of % has type %, which is not a built-in key type.', quote_ident(hit.name), source, hit.type_name
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'A key is copied by mad''s own functions, so no domain, user-defined type or user-defined cast may take part in it.',
              HINT = 'Key on a column of type smallint, integer, bigint, numeric, real, double precision, text, varchar, char, uuid, date, timestamp, timestamptz or boolean (a view can cast one: SELECT id::bigint AS id, ...).';
    END IF;
  END LOOP;
END
$$;

-- Whether a role is a superuser or can become one by SET ROLE (a member of a superuser role).
CREATE FUNCTION mad.reaches_superuser(role_name text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolsuper AND pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER'));
$$;

-- Keeps mad_reader a member of role_name exactly while a binding is owned by it (and it may safely be: not a
-- superuser, not itself a sidecar, so no membership loop). Runs as the schema owner, which grants the roles.
CREATE FUNCTION mad.sync_reader(role_name text) RETURNS void
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

-- A binding was created, dropped or handed to another owner: mad_reader follows the owners, and a table handed over
-- is readable by its new owner (with the grant option) and no longer by the old one, nor by those it granted it to.
CREATE FUNCTION mad.sync_readers() RETURNS trigger
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
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

CREATE TRIGGER sync_readers AFTER INSERT OR DELETE OR UPDATE OF owner ON mad.prediction_tables
FOR EACH ROW EXECUTE FUNCTION mad.sync_readers();

SELECT mad.sync_reader(o.owner) FROM (SELECT DISTINCT p.owner FROM mad.prediction_tables p) o;

-- The role the calling sidecar reads a binding's source as: its owner. Raises, saying what to do, when it may not:
-- a key of a type that is not built in, an owner that no longer exists, that is (or can become) a superuser while
-- the sidecar is not, or that the sidecar's login cannot SET ROLE to.
CREATE FUNCTION mad.reader_of(binding mad.prediction_tables) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = binding.owner) THEN
    RAISE EXCEPTION 'Prediction table % belongs to role %, which no longer exists, so no one reads its source.', quote_literal(binding.name), quote_ident(binding.owner)
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The schema owner can hand it over: UPDATE mad.prediction_tables SET owner = ''<role>'' WHERE name = %L;', binding.name);
  END IF;
  IF mad.reaches_superuser(binding.owner) AND NOT mad.reaches_superuser(session_user) THEN
    RAISE EXCEPTION 'Prediction table % belongs to role %, a superuser (or a member of one): the sidecar never reads as a superuser.', quote_literal(binding.name), quote_ident(binding.owner)
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('Hand it to a role that is not: UPDATE mad.prediction_tables SET owner = ''<role>'' WHERE name = %L; (as the schema owner)', binding.name);
  END IF;
  IF NOT pg_catalog.pg_has_role(session_user, binding.owner, 'MEMBER') THEN
    RAISE EXCEPTION 'The sidecar login % cannot read as role %, the owner of prediction table %.', quote_ident(session_user), quote_ident(binding.owner), quote_literal(binding.name)
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('Sidecar logins need role mad_sidecar (GRANT mad_sidecar TO %I;), and mad_reader the owner (GRANT %I TO mad_reader;).', session_user, binding.owner);
  END IF;
  RETURN binding.owner;
END
$$;

-- For the sidecar: the role to read a prediction table's source as (it sends SET LOCAL ROLE to it with the read).
CREATE FUNCTION mad.read_role(table_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'read sources');
  RETURN mad.reader_of(mad.require_prediction_table(table_name));
END
$$;

CREATE OR REPLACE FUNCTION mad.create_prediction_table(name text, source regclass, key text[], model text, features jsonb DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  table_name text := create_prediction_table.name;
  model_name text := split_part(create_prediction_table.model, '@', 1);
  model_version int;
  found_version mad.model_versions%ROWTYPE;
  key_column text;
  hit record;
  key_names text[] := '{}';
  key_types text[] := '{}';
  mapped jsonb;
  output_columns jsonb := '[]';
  output_column jsonb;
  column_name text;
  definitions text[] := '{}';
  binding mad.prediction_tables;
BEGIN
  PERFORM mad.check_name(table_name, 'prediction table');
  IF create_prediction_table.source IS NULL THEN
    RAISE EXCEPTION 'Give the source table whose rows are scored.' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM mad.require_source_access(create_prediction_table.source, 'create a prediction table');
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = create_prediction_table.source) NOT IN ('r', 'p', 'v', 'm', 'f') THEN
    RAISE EXCEPTION '% is not a table or view.', create_prediction_table.source USING ERRCODE = 'wrong_object_type';
  END IF;
  IF key IS NULL OR cardinality(key) = 0 THEN
    RAISE EXCEPTION 'Give the key column(s) that identify a row of %, e.g. key => ''{id}''.', create_prediction_table.source
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM mad.prediction_tables p WHERE p.name = table_name) OR to_regclass(format('mad_out.%I', table_name)) IS NOT NULL THEN
    RAISE EXCEPTION 'Prediction table % already exists; refresh it with: SELECT mad.refresh(%L)', quote_literal(table_name), table_name
      USING ERRCODE = 'unique_violation';
  END IF;

  model_version := mad.resolve_reference(create_prediction_table.model);
  SELECT * INTO found_version FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version;
  PERFORM mad.ready_signature(model_name, model_version);

  FOREACH key_column IN ARRAY key LOOP
    SELECT * INTO hit FROM mad.find_column(create_prediction_table.source, key_column);
    IF hit.name IS NULL THEN
      RAISE EXCEPTION 'Table % has no column %; its columns: %.', create_prediction_table.source, quote_literal(key_column),
        mad.describe_columns(create_prediction_table.source) USING ERRCODE = 'undefined_column';
    END IF;
    IF hit.name = ANY (key_names) THEN
      RAISE EXCEPTION 'Key column % is given twice.', quote_ident(hit.name) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    key_names := key_names || hit.name;
    key_types := key_types || hit.type_name;
    definitions := definitions || format('%I %s NOT NULL', hit.name, hit.type_name);
  END LOOP;
  PERFORM mad.require_builtin_keys(create_prediction_table.source, key_names, NULL);

  mapped := mad.map_features(create_prediction_table.source, model_name, found_version.signature,
                             coalesce(create_prediction_table.features, found_version.metadata -> 'features'));

  -- Decoded columns keep their names unless one clashes with a key or trailing column.
  FOR output_column IN SELECT value FROM jsonb_array_elements(found_version.signature -> 'columns') LOOP
    column_name := output_column ->> 'name';
    IF lower(column_name) = ANY (SELECT lower(k) FROM unnest(key_names) k) OR column_name IN ('model_version', 'scored_at', 'error') THEN
      column_name := 'predicted_' || column_name;
    END IF;
    output_column := jsonb_set(output_column, '{name}', to_jsonb(column_name));
    output_columns := output_columns || output_column;
    definitions := definitions || format('%I %s', column_name, mad.output_sql_type(output_column ->> 'type'));
  END LOOP;
  definitions := definitions || ARRAY['model_version int NOT NULL', 'scored_at timestamptz NOT NULL', 'error text'];

  -- The trigger sync_readers lets the sidecar read as the owner.
  INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns)
  VALUES (table_name, create_prediction_table.source, key_names, key_types, create_prediction_table.model, mapped -> 'mapping',
          ARRAY(SELECT jsonb_array_elements_text(mapped -> 'slots')), output_columns)
  RETURNING * INTO binding;
  EXECUTE format('CREATE TABLE mad_out.%I (%s, PRIMARY KEY (%s))', table_name, array_to_string(definitions, ', '), mad.key_list(binding, '%I'));
  PERFORM mad.grant_predictions(binding);
  RETURN format('mad_out.%I', table_name)::regclass;
END
$$;

-- Who may read mad_out.<name> from the start: mad_admin, and its owner, with the grant option to grant it on.
CREATE FUNCTION mad.grant_predictions(binding mad.prediction_tables) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  EXECUTE format('GRANT SELECT ON mad_out.%I TO mad_admin', binding.name);
  IF binding.owner <> current_user AND EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = binding.owner) THEN
    EXECUTE format('GRANT SELECT ON mad_out.%I TO %I WITH GRANT OPTION', binding.name, binding.owner);
  END IF;
END
$$;

-- Starts a full refresh: records the job, its build table and one task over every key, which the sidecar that claims
-- it plans (mad.plan_job); returns the job id at once. Reads no user relation (only the catalogs): the sidecar reads
-- the source, as the binding's owner. A refresh already running for the table is not started twice: its id is returned.
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

-- What a sidecar needs to run a task: the statement that reads its rows (keys, then the distinct feature columns,
-- each with the type it arrives in), the build table, and which feature column feeds each model slot. For the first
-- task of a job not planned yet, also how to plan it ('planning': the count, and the sample of key bounds with $1
-- the sample's percentage and $2 the number of tasks; the sidecar runs them as the owner and calls mad.plan_job).
CREATE OR REPLACE FUNCTION mad.task_plan(task_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  task mad.tasks;
  job mad.jobs;
  binding mad.prediction_tables;
  reads record;
  conditions text[] := '{}';
  keys text;
  source text;
  planning jsonb;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT * INTO task FROM mad.tasks t WHERE t.id = task_plan.task_id;
  SELECT * INTO job FROM mad.jobs j WHERE j.id = task.job_id;
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = job.prediction_table;
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);
  SELECT * INTO reads FROM mad.feature_reads(binding);

  keys := mad.key_list(binding, '%I');
  source := mad.qualified_name(binding.source);
  IF task.lo IS NOT NULL THEN
    conditions := conditions || format('ROW(%s) >= ROW(%s)', keys, mad.key_values(binding, task.lo));
  END IF;
  IF task.hi IS NOT NULL THEN
    conditions := conditions || format('ROW(%s) < ROW(%s)', keys, mad.key_values(binding, task.hi));
  END IF;
  IF NOT job.planned THEN
    planning := jsonb_build_object(
      'count', format('SELECT pg_catalog.count(*) FROM %s', source),
      -- Key ranges from a sample of the key in key order: each task covers [previous bound, next bound).
      'sample', format(
        'SELECT s.b FROM (SELECT ARRAY[%s] AS b, pg_catalog.row_number() OVER (ORDER BY %s) AS rn, pg_catalog.count(*) OVER () AS c FROM %s%s WHERE %s) s ' ||
        'WHERE s.rn OPERATOR(pg_catalog.%%) GREATEST(1::bigint, s.c OPERATOR(pg_catalog./) $2::bigint) OPERATOR(pg_catalog.=) 0 AND s.rn OPERATOR(pg_catalog.<) s.c ORDER BY s.rn',
        mad.key_list(binding, '%I::text'), keys, source,
        CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) IN ('r', 'm') THEN ' TABLESAMPLE SYSTEM ($1::double precision)' ELSE '' END,
        mad.key_list(binding, '%I IS NOT NULL', ' AND ')),
      'task_rows', mad.setting_int('refresh_task_rows', 50000),
      'max_tasks', mad.setting_int('refresh_max_tasks', 64));
  END IF;

  RETURN jsonb_build_object(
    'query', format('SELECT %s FROM %s%s', array_to_string(ARRAY[keys] || reads.expressions, ', '), source,
                    CASE WHEN cardinality(conditions) > 0 THEN ' WHERE ' || array_to_string(conditions, ' AND ') ELSE '' END),
    'build_table', job.build_table,
    'key_columns', to_jsonb(binding.key_columns),
    'key_types', to_jsonb(binding.key_types),
    'feature_columns', to_jsonb(reads.features),
    'feature_types', to_jsonb(reads.read_types),
    'slots', to_jsonb(reads.slots),
    'columns', binding.columns,
    'model', job.model,
    'version', job.version,
    'planning', planning);
END
$$;

-- Plans a job from what the sidecar holding its first task read as the owner: the source's row count and the sampled
-- key bounds (a JSON array of key values as text arrays, in key order). The first task keeps [start, first bound),
-- a task is queued per following range, and the job's totals are set. Fenced on the task's lease (55M02, as
-- complete_task). Returns the first task's new plan.
CREATE FUNCTION mad.plan_job(task_id bigint, lease_token uuid, rows_total bigint, bounds jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  job mad.jobs;
  task mad.tasks;
  binding mad.prediction_tables;
  bound jsonb;
  current_bound text[];
  previous text[];
  ordinal int := 0;
  ascending boolean;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT j.* INTO job FROM mad.jobs j JOIN mad.tasks t ON t.job_id = j.id WHERE t.id = plan_job.task_id FOR UPDATE OF j;
  SELECT * INTO task FROM mad.tasks t WHERE t.id = plan_job.task_id AND t.lease_token = plan_job.lease_token AND t.state = 'running' FOR UPDATE;
  IF NOT FOUND OR job.state <> 'running' OR job.planned OR task.ordinal <> 0 THEN
    RAISE EXCEPTION 'Task % of job % is no longer held by this lease, or its job is planned already.', plan_job.task_id, job.id USING ERRCODE = '55M02';
  END IF;
  IF rows_total IS NULL OR rows_total < 0 OR jsonb_typeof(coalesce(bounds, '[]')) <> 'array'
     OR jsonb_array_length(coalesce(bounds, '[]')) >= greatest(1, mad.setting_int('refresh_max_tasks', 64)) THEN
    RAISE EXCEPTION 'A plan needs a row count and fewer key bounds than refresh_max_tasks.' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = job.prediction_table;
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);

  FOR bound IN SELECT b.value FROM jsonb_array_elements(coalesce(bounds, '[]')) b LOOP
    IF jsonb_typeof(bound) <> 'array' OR jsonb_array_length(bound) <> cardinality(binding.key_columns) THEN
      RAISE EXCEPTION 'A key bound must hold % value(s) as text: %.', cardinality(binding.key_columns), bound USING ERRCODE = 'invalid_parameter_value';
    END IF;
    current_bound := ARRAY(SELECT jsonb_array_elements_text(bound));
    CONTINUE WHEN current_bound = previous;
    IF previous IS NOT NULL THEN
      -- Built-in key types only (checked above): these casts run PostgreSQL's own code.
      EXECUTE format('SELECT ROW(%s) < ROW(%s)', mad.key_values(binding, previous), mad.key_values(binding, current_bound)) INTO ascending;
      IF NOT ascending THEN
        RAISE EXCEPTION 'Key bounds must come in key order: % comes after %.', current_bound, previous USING ERRCODE = 'invalid_parameter_value';
      END IF;
      INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (job.id, ordinal, previous, current_bound);
    ELSE
      UPDATE mad.tasks t SET hi = current_bound WHERE t.id = task.id;
    END IF;
    previous := current_bound;
    ordinal := ordinal + 1;
  END LOOP;
  IF previous IS NOT NULL THEN
    INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (job.id, ordinal, previous, NULL);
  END IF;

  UPDATE mad.jobs j SET planned = true, rows_total = plan_job.rows_total, tasks_total = ordinal + 1 WHERE j.id = job.id;
  IF ordinal > 0 THEN
    PERFORM pg_notify('mad_jobs', json_build_object('event', 'planned', 'job', job.id, 'table', binding.name)::text);
  END IF;
  RETURN mad.task_plan(plan_job.task_id);
END
$$;

-- Grants the old mad_out table carried, made again on the new one: those made by the table's owner (the schema
-- owner) here; those made by other roles are recorded in mad.carried_grants for the sidecar to make as those roles
-- (a role's grant stays its own, so its REVOKE keeps working), parents first: an owner's before the grants of a role
-- it gave the grant option. The sidecar's own writes are given by stream_after_refresh, not carried.
CREATE FUNCTION mad.carry_grants(binding mad.prediction_tables, job_id bigint, old_acl aclitem[]) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  entry record;
  ordinal int := 0;
BEGIN
  FOR entry IN
    WITH RECURSIVE acl AS (
      SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable FROM pg_catalog.aclexplode(old_acl) a
      WHERE a.grantee NOT IN (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname IN ('mad_sidecar', current_user::text))),
    depth AS (
      SELECT a.*, 0 AS level FROM acl a WHERE a.grantor = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
      UNION ALL
      SELECT a.*, d.level + 1 FROM acl a JOIN depth d ON a.grantor = d.grantee AND d.is_grantable AND a.privilege_type = d.privilege_type
      WHERE d.level < 8)
    SELECT DISTINCT ON (d.grantor, d.grantee, d.privilege_type) pg_catalog.pg_get_userbyid(d.grantor)::text AS grantor,
           CASE WHEN d.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(d.grantee)::text) END AS grantee,
           d.privilege_type, d.is_grantable, d.level
    FROM depth d ORDER BY d.grantor, d.grantee, d.privilege_type, d.level
  LOOP
    IF entry.level = 0 THEN
      EXECUTE format('GRANT %s ON mad_out.%I TO %s%s', entry.privilege_type, binding.name, entry.grantee,
                     CASE WHEN entry.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    ELSE
      INSERT INTO mad.carried_grants (job_id, ordinal, grantor, statement)
      VALUES (carry_grants.job_id, entry.level * 100000 + ordinal, entry.grantor,
              format('GRANT %s ON mad_out.%I TO %s%s', entry.privilege_type, binding.name, entry.grantee,
                     CASE WHEN entry.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END));
      ordinal := ordinal + 1;
    END IF;
  END LOOP;
END
$$;

-- For the sidecar completing a job, in the swap's transaction: the grants other roles had made on the replaced table,
-- as one script that makes each as its grantor (SET LOCAL ROLE, then RESET ROLE at the end), or NULL when there are
-- none. A grantor the sidecar cannot act as (it owns no prediction table, or is a superuser) is left out: its grants
-- are lost, and say so in docs/SECURITY.md.
CREATE FUNCTION mad.carried_grants(job_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  script text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT string_agg(format('SET LOCAL ROLE %I; %s', g.grantor, g.statement), '; ' ORDER BY g.ordinal) INTO script
  FROM mad.carried_grants g
  WHERE g.job_id = carried_grants.job_id
    AND pg_catalog.pg_has_role(session_user, g.grantor, 'MEMBER')
    AND (NOT mad.reaches_superuser(g.grantor) OR mad.reaches_superuser(session_user));
  DELETE FROM mad.carried_grants g WHERE g.job_id = carried_grants.job_id;
  RETURN script || '; RESET ROLE';
END
$$;

-- Marks a task done, fenced on its lease token, and adds its rows to the job's progress; the last task swaps the
-- build table in, carrying the old table's grants over, and waits at most swap_lock_timeout_ms for the locks of the
-- sessions reading it. Call it in the transaction that wrote the task's rows, as its last statement before COMMIT
-- (then mad.carried_grants when it returns 'done'): when the lease was lost it raises (SQLSTATE 55M02, lease lost),
-- and the rows roll back with it. Returns the job's state.
CREATE OR REPLACE FUNCTION mad.complete_task(task_id bigint, lease_token uuid, rows_done bigint, rows_failed bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  job mad.jobs;
  binding mad.prediction_tables;
  state text := 'running';
  old_acl aclitem[];
  wait_ms bigint := greatest(1, mad.setting_int('swap_lock_timeout_ms', 5000));
  previous_timeout text := pg_catalog.current_setting('lock_timeout');
  holders text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT j.* INTO job FROM mad.jobs j JOIN mad.tasks t ON t.job_id = j.id WHERE t.id = complete_task.task_id FOR UPDATE OF j;
  UPDATE mad.tasks t SET state = 'done', rows_done = complete_task.rows_done, rows_failed = complete_task.rows_failed,
    lease_token = NULL, lease_until = NULL, finished_at = clock_timestamp(), error = NULL
  WHERE t.id = complete_task.task_id AND t.lease_token = complete_task.lease_token AND t.state = 'running' AND job.state = 'running';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Task % of job % is no longer held by this lease (it expired and was claimed again, or the job ended): its rows are rolled back.',
      complete_task.task_id, job.id USING ERRCODE = '55M02';
  END IF;

  UPDATE mad.jobs j SET tasks_done = j.tasks_done + 1, rows_done = j.rows_done + complete_task.rows_done,
    rows_failed = j.rows_failed + complete_task.rows_failed
  WHERE j.id = job.id RETURNING * INTO job;
  IF job.tasks_done < job.tasks_total THEN
    PERFORM pg_notify('mad_jobs', json_build_object('event', 'progress', 'job', job.id, 'rows_done', job.rows_done)::text);
    RETURN state;
  END IF;

  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = job.prediction_table FOR UPDATE;
  BEGIN
    PERFORM pg_catalog.set_config('lock_timeout', wait_ms::text, true);
    SELECT c.relacl INTO old_acl FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(format('mad_out.%I', binding.name));
    EXECUTE format('DROP TABLE IF EXISTS mad_out.%I', binding.name);
    EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', job.build_table, 'job_' || job.id || '_pkey', left(binding.name, 58) || '_pkey');
    EXECUTE format('ALTER TABLE %s RENAME TO %I', job.build_table, binding.name);
    EXECUTE format('ALTER TABLE mad_build.%I SET SCHEMA mad_out', binding.name);
    PERFORM pg_catalog.set_config('lock_timeout', previous_timeout, true);
    EXECUTE format('REVOKE INSERT ON mad_out.%I FROM mad_sidecar', binding.name);
    PERFORM mad.grant_predictions(binding);
    PERFORM mad.carry_grants(binding, job.id, old_acl);
    UPDATE mad.prediction_tables p SET refreshed_at = now(), refreshed_version = job.version, rows_scored = job.rows_done,
      rows_failed = job.rows_failed, last_job = job.id
    WHERE p.name = binding.name;
    state := 'done';
    UPDATE mad.jobs j SET state = 'done', finished_at = clock_timestamp() WHERE j.id = job.id;
  EXCEPTION
    WHEN dependent_objects_still_exist THEN
      state := 'failed';
      UPDATE mad.jobs j SET state = 'failed', finished_at = clock_timestamp(),
        error = format('mad_out.%I cannot be replaced: other objects depend on it (%s). Drop them, or read the table through a function.', binding.name, SQLERRM)
      WHERE j.id = job.id;
    WHEN lock_not_available THEN
      PERFORM pg_catalog.set_config('lock_timeout', previous_timeout, true);
      SELECT string_agg(DISTINCT l.pid::text, ', ') INTO holders FROM pg_catalog.pg_locks l
      WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
        AND l.relation = pg_catalog.to_regclass(format('mad_out.%I', binding.name));
      state := 'failed';
      UPDATE mad.jobs j SET state = 'failed', finished_at = clock_timestamp(),
        error = format('mad_out.%I could not be swapped in: other sessions (pid %s) held a lock on it for more than swap_lock_timeout_ms (%s ms). '
                       'End their open transactions (see pg_stat_activity, or pg_terminate_backend), or raise the setting, and refresh again: SELECT mad.refresh(%L).',
                       binding.name, coalesce(holders, 'gone by now'), wait_ms, binding.name)
      WHERE j.id = job.id;
  END;
  PERFORM pg_notify('mad_jobs', json_build_object('event', state, 'job', job.id, 'table', binding.name)::text);
  RETURN state;
END
$$;

-- Never runs (its trigger fires WHEN false): a trigger AFTER UPDATE OF the key columns makes PostgreSQL refuse to
-- change their type while the table is watched ("cannot alter type of a column used in a trigger definition"), so a
-- key cannot become a user type whose assignment cast the capture triggers, running as the schema owner, would call.
CREATE FUNCTION mad.key_type_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  RETURN NULL;
END
$$;

-- Starts streaming a prediction table: the caller must own it, may read its source and has TRIGGER on it; its key
-- columns must be of built-in types (the capture triggers copy them as the schema owner), and stay so while it is
-- watched (trigger mad_watch_<name>_k).
CREATE OR REPLACE FUNCTION mad.watch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
BEGIN
  binding := mad.require_prediction_table(watch.name);
  PERFORM mad.require_binding_owner(binding, 'watch ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'watch ' || quote_ident(binding.name));
  PERFORM mad.require_trigger_privilege(binding.source, 'watch ' || quote_ident(binding.name));
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'Only a table can be watched; % is not one.', binding.source USING ERRCODE = 'wrong_object_type';
  END IF;
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);
  IF binding.watched THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(mad.lock_key('stream_notify'), 0);
  PERFORM mad.create_capture(binding, (SELECT w.notify FROM mad.stream_wake w WHERE w.id = 1));
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                   'mad_watch_' || binding.name || '_' || operation,
                   CASE operation WHEN 'i' THEN 'INSERT' WHEN 'u' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'TRUNCATE' END,
                   mad.qualified_name(binding.source),
                   CASE operation WHEN 'i' THEN 'REFERENCING NEW TABLE AS new_rows' WHEN 'u' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                  WHEN 'd' THEN 'REFERENCING OLD TABLE AS old_rows' ELSE '' END,
                   mad.capture_function(binding.name, operation));
  END LOOP;
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION mad.key_type_guard()',
                 'mad_watch_' || binding.name || '_k', mad.key_list(binding, '%I'), mad.qualified_name(binding.source));
  PERFORM mad.grant_stream_writes(binding.name);
  -- Keys left by an unwatch that skipped a batch in flight: a refresh, not the stream, brings such rows up to date.
  PERFORM mad.clear_outbox(binding.name);
  UPDATE mad.prediction_tables p SET watched = true, stream_error = NULL, stream_error_at = NULL WHERE p.name = binding.name;
  PERFORM pg_notify('mad_rows', 'plan:' || binding.name); -- 'plan:': sidecars read their plans again
END
$$;

-- Stops streaming (as in 006, and the key-type guard): removes the triggers, their functions and the keys still waiting (the outbox table stays, empty).
CREATE OR REPLACE FUNCTION mad.unwatch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
BEGIN
  binding := mad.require_prediction_table(unwatch.name);
  PERFORM mad.require_binding_owner(binding, 'unwatch ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'unwatch ' || quote_ident(binding.name));
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || '_' || operation, mad.qualified_name(binding.source));
    EXECUTE format('DROP FUNCTION IF EXISTS %s()', mad.capture_function(binding.name, operation));
  END LOOP;
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || '_k', mad.qualified_name(binding.source));
  EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON mad_out.%I FROM mad_sidecar', binding.name);
  UPDATE mad.prediction_tables p SET watched = false, stream_error = NULL, stream_error_at = NULL WHERE p.name = binding.name;
  -- Keys a sidecar's batch holds are skipped, not waited for: that batch waits for the source this holds (a deadlock).
  PERFORM mad.clear_outbox(binding.name);
  DELETE FROM mad.stream_stats s WHERE s.prediction_table = binding.name;
  PERFORM pg_notify('mad_rows', 'plan:' || binding.name);
END
$$;

-- How to stream a table (as in 006), and the statement that switches to the role its source is read as ('read_as',
-- sent in the drain's batch right before the read, RESET ROLE right after it).
CREATE OR REPLACE FUNCTION mad.stream_plan(table_name text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  key_count int;
  reads record;
  model_name text;
  model_version int;
  claimed_keys text;
  join_keys text;
  output_types text[];
  parameters text[];
  selected text[];
  updates text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  binding := mad.require_prediction_table(table_name);
  key_count := cardinality(binding.key_columns);
  IF NOT binding.watched THEN
    RAISE EXCEPTION 'Prediction table % is not watched.', quote_literal(table_name) USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT * INTO reads FROM mad.feature_reads(binding);
  model_name := split_part(binding.model, '@', 1);
  model_version := mad.resolve_reference(binding.model);
  PERFORM mad.ready_signature(model_name, model_version);
  claimed_keys := 'jsonb_array_elements(pg_catalog.current_setting(''mad.stream_keys'')::jsonb) k';
  join_keys := mad.key_list(binding, 's.%1$I = (k.value ->> %4$s)::%2$s', ' AND ');
  output_types := ARRAY(SELECT mad.output_sql_type(c.value ->> 'type') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n);
  -- Parameters: $1..$k the keys as text, then each output column (array-valued ones as text literals), the errors, the version.
  parameters := ARRAY[mad.key_list(binding, '$%3$s::text[]')]
             || ARRAY(SELECT format('$%s::%s', key_count + n, CASE WHEN t LIKE '%[]' THEN 'text[]' ELSE t || '[]' END)
                      FROM unnest(output_types) WITH ORDINALITY u(t, n))
             || format('$%s::text[]', key_count + cardinality(output_types) + 1);
  selected := ARRAY[mad.key_list(binding, 'u.k%3$s::%2$s')]
           || ARRAY(SELECT CASE WHEN t LIKE '%[]' THEN format('u.c%s::%s', n, t) ELSE format('u.c%s', n) END
                    FROM unnest(output_types) WITH ORDINALITY u(t, n))
           || format('$%s', key_count + cardinality(output_types) + 2) || 'pg_catalog.now()'::text || 'u.error'::text;
  updates := (SELECT string_agg(format('%I = EXCLUDED.%I', c, c), ', ')
              FROM (SELECT value ->> 'name' AS c FROM jsonb_array_elements(binding.columns)
                    UNION ALL SELECT unnest(ARRAY['model_version', 'scored_at', 'error'])) u);
  RETURN jsonb_build_object(
    -- One index lookup per claimed key, whatever the table's size was when the statement was prepared: OFFSET 0
    -- keeps the lateral subquery from being flattened into a join the planner might hash over a scan of the table.
    'query', format('SELECT s.* FROM %s CROSS JOIN LATERAL (SELECT %s FROM %s s WHERE %s OFFSET 0) s',
                    claimed_keys,
                    array_to_string(ARRAY[mad.key_list(binding, 's.%I::text')] || ARRAY(SELECT 's.' || e FROM unnest(reads.expressions) e), ', '),
                    mad.qualified_name(binding.source), join_keys),
    'upsert', format('INSERT INTO mad_out.%I (%s) SELECT %s FROM unnest(%s) AS u(%s) ON CONFLICT (%s) DO UPDATE SET %s',
                     binding.name,
                     array_to_string(ARRAY[mad.key_list(binding, '%I')]
                                     || ARRAY(SELECT format('%I', c.value ->> 'name') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n)
                                     || ARRAY['model_version', 'scored_at', 'error'], ', '),
                     array_to_string(selected, ', '),
                     array_to_string(parameters, ', '),
                     array_to_string(ARRAY[mad.key_list(binding, 'k%3$s')]
                                     || ARRAY(SELECT 'c' || n FROM generate_series(1, cardinality(output_types)) n) || 'error'::text, ', '),
                     mad.key_list(binding, '%I'),
                     updates),
    'delete', format('DELETE FROM mad_out.%I d WHERE d.ctid = ANY (ARRAY(SELECT s.mad_row FROM %s CROSS JOIN LATERAL (SELECT s.ctid AS mad_row, %s FROM mad_out.%I s WHERE %s OFFSET 0) s WHERE NOT EXISTS (SELECT FROM unnest(%s) AS f(%s) WHERE %s)))',
                     binding.name, claimed_keys,
                     mad.key_list(binding, 's.%I'),
                     binding.name, join_keys,
                     mad.key_list(binding, '$%3$s::text[]'),
                     mad.key_list(binding, 'k%3$s'),
                     mad.key_list(binding, 'f.k%3$s = s.%1$I::text', ' AND ')),
    'key_columns', to_jsonb(binding.key_columns),
    'key_types', to_jsonb(binding.key_types),
    'feature_columns', to_jsonb(reads.features),
    'feature_types', to_jsonb(reads.read_types),
    'slots', to_jsonb(reads.slots),
    'columns', binding.columns,
    'model', model_name,
    'version', model_version,
    'sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version),
    'read_as', format('SET LOCAL ROLE %I', mad.reader_of(binding)));
END
$$;

-- Prediction tables belong to their owner: no longer readable by every mad_user, now or for tables created later.
ALTER DEFAULT PRIVILEGES IN SCHEMA mad_out REVOKE SELECT ON TABLES FROM mad_admin, mad_user;
REVOKE SELECT ON ALL TABLES IN SCHEMA mad_out FROM mad_user;
SELECT mad.grant_predictions(p) FROM mad.prediction_tables p WHERE pg_catalog.to_regclass(format('mad_out.%I', p.name)) IS NOT NULL;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.key_type_allowed(regtype), mad.require_builtin_keys(regclass, text[], text[]),
  mad.reaches_superuser(text), mad.sync_reader(text), mad.sync_readers(), mad.reader_of(mad.prediction_tables),
  mad.read_role(text), mad.grant_predictions(mad.prediction_tables), mad.plan_job(bigint, uuid, bigint, jsonb),
  mad.carry_grants(mad.prediction_tables, bigint, aclitem[]), mad.carried_grants(bigint), mad.key_type_guard() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.read_role(text), mad.plan_job(bigint, uuid, bigint, jsonb), mad.carried_grants(bigint) TO mad_sidecar;
