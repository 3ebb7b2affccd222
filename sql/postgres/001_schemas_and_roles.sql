-- Schemas, the three group roles of the security model (DESIGN.md, "Security model"), and the protocol constants
-- the mad functions share with the C# code (src/ModelAsData.Postgres/Protocol.cs and docs/PROTOCOL.md hold the
-- same lists). Each value has one meaning.
--
-- SQLSTATEs the mad functions raise (custom ones end in M + digits; clients branch on the code, never the text):
--   55M01  a model version exists but is not ready (pending or rejected), or a model has no ready version yet
--   55M02  a refresh task's lease was lost (mad.complete_task): the task's rows roll back
--   55M03  no sidecar is running, so nothing can answer CALL mad.predict
--   22M01  features do not fit the model (their shape or type), or are not a JSON object
--   22M02  the model cannot score (ONNX Runtime refused it): an answer code written by the sidecar
--   57M01  an online request was not answered in time (it expired)
--   57M02  the sidecar answering an online request stopped (its database session ended) before it answered
--   and the standard ones: insufficient_privilege, invalid_name, no_data_found, invalid_parameter_value,
--   object_not_in_prerequisite_state, unique_violation, program_limit_exceeded, undefined_column,
--   wrong_object_type, duplicate_column, active_sql_transaction; XX000 for an answer without a code.
--
-- NOTIFY channels (a notification is only a wake-up call: the work it announces is always a row first):
--   mad_models    a version was pushed or its status changed, an alias moved   {"event", "model", "version"[, "alias"]}
--   mad_jobs      a refresh job was created, progressed, was retried or ended  {"event", "job"[, "table", "rows_done"]}
--   mad_rows      a watched table has keys in its outbox (payload: the table name), or its plan changed ('plan:' || name)
--   mad_requests  an online request waits for the sidecar it names (the sidecar's id, or the request as JSON)
--   mad_reply     an async request was answered or expired                     {"id", "status"}
--
-- Advisory-lock keys. Two-int keys are (mad.lock_key(name), object); their class is four ASCII letters:
--   mad.lock_key('request_ticket')  'MADR'  object mad.ticket_key(ticket): a request worker holds its current ticket
--                                           (session, exclusive); CALL mad.predict waits for it (shared)
--   mad.lock_key('stream_poll')     'MADP'  object 0: held shared (session) by every drain that polls instead of
--                                           waiting for NOTIFY mad_rows
--   mad.lock_key('stream_notify')   'MADN'  object 0: serialises rewrites of the capture functions (transaction)
-- Bigint keys (a space of their own):
--   0x6D61645F6D696772 ('mad_migr')         the migrator, around each script's transaction (C# only)
--   hashtextextended(table || ':' || key, 0) one key of a watched table while a drain scores it (transaction)

CREATE SCHEMA IF NOT EXISTS mad;
CREATE SCHEMA IF NOT EXISTS mad_out;

DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['mad_admin', 'mad_user', 'mad_sidecar'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created by a concurrent migration of another database
      END;
    END IF;
  END LOOP;
END
$$;

COMMENT ON ROLE mad_admin IS 'ModelAsData: registers models, moves aliases, creates prediction tables.';
COMMENT ON ROLE mad_user IS 'ModelAsData: reads the registry and predictions, calls predict.';
COMMENT ON ROLE mad_sidecar IS 'ModelAsData: the scoring engine (mad serve); validates model versions.';

REVOKE ALL ON SCHEMA mad FROM PUBLIC;
REVOKE ALL ON SCHEMA mad_out FROM PUBLIC;
GRANT USAGE ON SCHEMA mad TO mad_admin, mad_user, mad_sidecar;
GRANT USAGE ON SCHEMA mad_out TO mad_admin, mad_user, mad_sidecar;

-- Prediction tables are created later by the migrating owner's functions: readers can see them without a grant each.
ALTER DEFAULT PRIVILEGES IN SCHEMA mad_out GRANT SELECT ON TABLES TO mad_admin, mad_user;

-- The class of a two-int advisory-lock key, by name (the table above). Immutable with a constant argument, so the
-- planner folds a call into its value once per cached plan: the hot paths pay nothing for the name. An unknown
-- name raises rather than returning NULL, which pg_advisory_lock would take as "lock nothing".
CREATE FUNCTION mad.lock_key(name text) RETURNS int
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
BEGIN
  CASE name
    WHEN 'request_ticket' THEN RETURN 1296122962; -- 'MADR'
    WHEN 'stream_poll' THEN RETURN 1296122960;    -- 'MADP'
    WHEN 'stream_notify' THEN RETURN 1296122958;  -- 'MADN'
    ELSE RAISE EXCEPTION 'There is no advisory-lock key named %.', quote_literal(name) USING ERRCODE = 'invalid_parameter_value';
  END CASE;
END
$$;

-- The role a call is judged by: the one SET ROLE chose, else the login. Inside a SECURITY DEFINER function
-- current_user is the owner, but the role setting still reports the caller's SET ROLE (and cannot be changed there).
CREATE FUNCTION mad.caller_role() RETURNS text
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = mad, pg_temp AS $$
  SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user::text ELSE pg_catalog.current_setting('role') END;
$$;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.caller_role(), mad.lock_key(text) FROM PUBLIC;
