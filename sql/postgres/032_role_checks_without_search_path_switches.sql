-- The small helpers every online request calls several times no longer set search_path (issue 13, latency).
--
-- A function with `SET search_path` saves, sets and restores the setting on every call, and a SQL function with any
-- SET clause is never inlined into its caller's query. These five run a dozen times per CALL mad.predict (submit,
-- claim, answer, wait) and cost ~25 µs each that way against ~5 µs without (a DO loop of 20,000 calls, docs/ONLINE.md).
-- They need no pinned path: each is granted to nobody but mad_sidecar's setting_int, so it runs only inside the
-- definer functions (whose search_path is pinned to mad, pg_temp) or a sidecar's session (pinned at login); and every
-- name in them is schema-qualified anyway, operators included, so no search_path could change what they call.

CREATE OR REPLACE FUNCTION mad.caller_role() RETURNS text
LANGUAGE sql STABLE SECURITY INVOKER AS $$
  SELECT CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none'
              THEN pg_catalog.session_user()::text ELSE pg_catalog.current_setting('role') END;
$$;

CREATE OR REPLACE FUNCTION mad.require_role(needed text, action text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT pg_catalog.pg_has_role(mad.caller_role(), needed, 'MEMBER') THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role %', action, pg_catalog.quote_ident(mad.caller_role()), needed
      USING ERRCODE = 'insufficient_privilege',
            HINT = pg_catalog.format('An administrator can run: GRANT %I TO %I;', needed, mad.caller_role());
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION mad.setting_int(setting text, fallback bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT s.value::bigint FROM mad.settings s WHERE s.name OPERATOR(pg_catalog.=) setting), fallback);
$$;

CREATE OR REPLACE FUNCTION mad.ticket_key(ticket bigint) RETURNS int
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT (ticket OPERATOR(pg_catalog.%) 2147483647)::int;
$$;

CREATE OR REPLACE FUNCTION mad.check_name(value text, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NULL OR value OPERATOR(pg_catalog.!~) '^[a-z_][a-z0-9_]*$' OR pg_catalog.length(value) OPERATOR(pg_catalog.>) 63 THEN
    RAISE EXCEPTION 'Invalid % name %: use lower-case letters, digits and ''_'', starting with a letter or ''_'', at most 63 characters.',
      what, coalesce(pg_catalog.quote_literal(value), 'NULL')
      USING ERRCODE = 'invalid_name';
  END IF;
  RETURN value;
END
$$;
