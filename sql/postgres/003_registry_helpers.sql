-- Helpers shared by the registry functions: name validation, the caller's role check, and the lists of what
-- exists that error messages name.

-- A lower-case identifier of at most 63 characters; anything else is refused before it reaches any statement.
CREATE FUNCTION mad.check_name(value text, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF value IS NULL OR value !~ '^[a-z_][a-z0-9_]*$' OR length(value) > 63 THEN
    RAISE EXCEPTION 'Invalid % name %: use lower-case letters, digits and ''_'', starting with a letter or ''_'', at most 63 characters.',
      what, coalesce(quote_literal(value), 'NULL')
      USING ERRCODE = 'invalid_name';
  END IF;
  RETURN value;
END
$$;

-- SECURITY DEFINER functions run as their owner, so the caller is session_user: the role that logged in.
CREATE FUNCTION mad.require_role(needed text, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT pg_catalog.pg_has_role(session_user, needed, 'MEMBER') THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role %', action, quote_ident(session_user::text), needed
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An administrator can run: GRANT %I TO %I;', needed, session_user);
  END IF;
END
$$;

CREATE FUNCTION mad.max_model_bytes() RETURNS bigint
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce((SELECT value::bigint FROM mad.settings WHERE name = 'max_model_bytes'), 268435456);
$$;

CREATE FUNCTION mad.describe_models() RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce('the models are ' || string_agg(quote_literal(m.name), ', ' ORDER BY m.name),
                  'there are no models yet: push one with mad.push_model or `mad models push`')
  FROM mad.models m;
$$;

CREATE FUNCTION mad.describe_versions(model_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce('its versions are ' || string_agg(format('%s (%s)', v.version, v.status), ', ' ORDER BY v.version),
                  'it has no versions')
  FROM mad.model_versions v WHERE v.model = model_name;
$$;

CREATE FUNCTION mad.describe_aliases(model_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce('its aliases are ' || string_agg(format('%s -> %s', a.alias, a.version), ', ' ORDER BY a.alias),
                  'it has no aliases')
  FROM mad.aliases a WHERE a.model = model_name;
$$;

-- Raises "not found" naming the models that exist, unless the model exists.
CREATE FUNCTION mad.require_model(model_name text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM mad.models m WHERE m.name = model_name) THEN
    RAISE EXCEPTION 'Model % does not exist; %.', quote_literal(model_name), mad.describe_models()
      USING ERRCODE = 'no_data_found';
  END IF;
END
$$;
