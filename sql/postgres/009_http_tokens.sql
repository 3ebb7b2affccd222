-- HTTP tokens (issue 12, item 7): the sidecar's HTTP door (`mad serve --http`) answers only requests that carry a
-- bearer token, and each token acts with the rights of one database role. The same gate as SQL decides: a token
-- may score when its role may call what CALL mad.predict runs (EXECUTE on mad.submit_request, and membership in
-- mad_user or mad_admin, the check in its body). Revoking the grant, the role or the token takes effect at the
-- sidecar's next check (it caches an answer for a few seconds, `mad serve --http-auth-cache`).
--
-- A token is data: 'mad_' followed by 64 hex digits (32 random bytes), shown once by mad.create_http_token and
-- stored only as the sha256 of its text. Who may do what:
--   mad_admin    creates, lists and revokes tokens (create_http_token, list_http_tokens, revoke_http_token)
--   mad_sidecar  looks a hash up (check_http_token) and counts the live tokens (live_http_tokens): it never sees a
--                token, and nobody can read the hashes back
--   nobody       reads mad.http_tokens directly (no table grants)

CREATE TABLE mad.http_tokens (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  label text NOT NULL,
  role text NOT NULL,
  token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  revoked_by text
);
-- A label names one live token; a revoked token's label may be used again.
CREATE UNIQUE INDEX http_tokens_live_label ON mad.http_tokens (label) WHERE revoked_at IS NULL;
REVOKE ALL ON mad.http_tokens FROM PUBLIC;

-- A new token for a role, returned once: only its sha256 is kept. The role need not be able to score yet (its
-- tokens get 403 until it may); a NOTICE says so.
CREATE FUNCTION mad.create_http_token(role name, label text, expires_at timestamptz DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  token text;
BEGIN
  PERFORM mad.require_role('mad_admin', 'create HTTP tokens');
  IF create_http_token.label IS NULL OR create_http_token.label !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
    RAISE EXCEPTION 'Invalid token label %: use 1 to 63 lower-case letters, digits, ''_'', ''.'' or ''-'', starting with a letter or digit.',
      coalesce(quote_literal(create_http_token.label), 'NULL')
      USING ERRCODE = 'invalid_name';
  END IF;
  IF create_http_token.role IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = create_http_token.role) THEN
    RAISE EXCEPTION 'Role % does not exist, so no token can act as it.', coalesce(quote_literal(create_http_token.role), 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Create it first, e.g. CREATE ROLE app_scorer NOLOGIN IN ROLE mad_user;';
  END IF;
  IF create_http_token.expires_at IS NOT NULL AND create_http_token.expires_at <= pg_catalog.now() THEN
    RAISE EXCEPTION 'The token % would expire at %, which has passed: give a time in the future, or none.',
      quote_literal(create_http_token.label), create_http_token.expires_at
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM mad.http_tokens t WHERE t.label = create_http_token.label AND t.revoked_at IS NULL) THEN
    RAISE EXCEPTION 'A token labelled % exists already.', quote_literal(create_http_token.label)
      USING ERRCODE = 'unique_violation',
            HINT = format('Revoke it first (SELECT mad.revoke_http_token(%L); or `mad tokens revoke %s`), or choose another label.',
                          create_http_token.label, create_http_token.label);
  END IF;

  -- 32 random bytes from the server's strong random source (gen_random_uuid is core from PostgreSQL 13 and needs no
  -- extension): three UUIDs carry 366 random bits, and their sha256 is 256 bits of them.
  token := 'mad_' || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
    pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, 'UTF8')), 'hex');
  INSERT INTO mad.http_tokens (label, role, token_sha256, created_by, expires_at)
  VALUES (create_http_token.label, create_http_token.role,
          pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8')), 'hex'), mad.caller_role(), create_http_token.expires_at);

  IF NOT mad.http_role_may_score(create_http_token.role) THEN
    RAISE NOTICE 'Role % may not score yet, so its token gets 403 until it may.', quote_ident(create_http_token.role)
      USING HINT = format('An administrator can run: GRANT mad_user TO %I;', create_http_token.role);
  END IF;
  RETURN token;
END
$$;

-- Revokes the live token of a label at once (a sidecar that cached its answer refuses it within its cache time).
CREATE FUNCTION mad.revoke_http_token(label text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_admin', 'revoke HTTP tokens');
  UPDATE mad.http_tokens t SET revoked_at = pg_catalog.now(), revoked_by = mad.caller_role()
  WHERE t.label = revoke_http_token.label AND t.revoked_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'There is no live token labelled %.', coalesce(quote_literal(revoke_http_token.label), 'NULL')
      USING ERRCODE = 'no_data_found',
            HINT = 'List the tokens with SELECT * FROM mad.list_http_tokens(); or `mad tokens list`.';
  END IF;
END
$$;

-- Every token, newest first, without its hash.
CREATE FUNCTION mad.list_http_tokens()
RETURNS TABLE (label text, role text, status text, created_by text, created_at timestamptz, expires_at timestamptz,
               revoked_by text, revoked_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_admin', 'list HTTP tokens');
  RETURN QUERY
  SELECT t.label, t.role,
         CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
              WHEN t.expires_at IS NOT NULL AND t.expires_at <= pg_catalog.now() THEN 'expired'
              ELSE 'live' END,
         t.created_by, t.created_at, t.expires_at, t.revoked_by, t.revoked_at
  FROM mad.http_tokens t
  ORDER BY t.created_at DESC, t.id DESC;
END
$$;

-- What CALL mad.predict requires of its caller (005_online_requests.sql): EXECUTE on mad.submit_request, which is the
-- gate, and membership in mad_user or mad_admin, the check in its body. A role that was dropped may do nothing.
CREATE FUNCTION mad.http_role_may_score(role text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = http_role_may_score.role) THEN false
              ELSE pg_catalog.has_function_privilege(http_role_may_score.role, 'mad.submit_request(text, jsonb, text)', 'EXECUTE')
                   AND (pg_catalog.pg_has_role(http_role_may_score.role, 'mad_user', 'MEMBER')
                        OR pg_catalog.pg_has_role(http_role_may_score.role, 'mad_admin', 'MEMBER')) END;
$$;

-- The sidecar's check of a bearer token, by the sha256 of its text: no row for an unknown, revoked or expired token;
-- else its label, its role, and whether that role may score now.
CREATE FUNCTION mad.check_http_token(token_sha256 text)
RETURNS TABLE (label text, role text, may_score boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'check HTTP tokens');
  RETURN QUERY
  SELECT t.label, t.role, mad.http_role_may_score(t.role)
  FROM mad.http_tokens t
  WHERE t.token_sha256 = check_http_token.token_sha256 AND t.revoked_at IS NULL
    AND (t.expires_at IS NULL OR t.expires_at > pg_catalog.now());
END
$$;

-- How many tokens are live: a sidecar that binds a public address with none warns that nobody can use it.
CREATE FUNCTION mad.live_http_tokens() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'count HTTP tokens');
  RETURN (SELECT pg_catalog.count(*) FROM mad.http_tokens t
          WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > pg_catalog.now()));
END
$$;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.create_http_token(name, text, timestamptz), mad.revoke_http_token(text), mad.list_http_tokens(),
  mad.http_role_may_score(text), mad.check_http_token(text), mad.live_http_tokens() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.create_http_token(name, text, timestamptz), mad.revoke_http_token(text), mad.list_http_tokens() TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.check_http_token(text), mad.live_http_tokens() TO mad_sidecar;
