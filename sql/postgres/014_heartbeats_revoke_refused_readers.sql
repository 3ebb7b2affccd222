-- Closes the window 013 left open: ALTER ROLE fires no trigger, so an owner that gains CREATEROLE, BYPASSRLS or
-- REPLICATION (or joins a role that has one) after its table was bound stayed a member of mad_reader until its next
-- refresh, create or hand-over, and a hostile mad_sidecar login could SET ROLE to it in the meantime. Every running
-- sidecar's heartbeat (every 10 s by default) now revokes such owners, so the window is one heartbeat long. An owner
-- that is, or became, a superuser is dropped too (only a superuser sidecar reads its tables, and it needs no grant).

CREATE OR REPLACE FUNCTION mad.sidecar_heartbeat(id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  owner_name text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run a sidecar');
  UPDATE mad.sidecars s SET heartbeat_at = now(), stopped_at = NULL WHERE s.id = sidecar_heartbeat.id;
  FOR owner_name IN
    SELECT r.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
    WHERE m.member = 'mad_reader'::regrole
      AND (mad.reaches_superuser(r.rolname) OR mad.reader_refusal(r.rolname) IS NOT NULL)
  LOOP
    BEGIN
      PERFORM mad.sync_reader(owner_name);
    EXCEPTION WHEN insufficient_privilege THEN
      -- The heartbeat must go on; the read path (mad.read_role) still refuses this owner.
      RAISE WARNING 'Role % may no longer be read as, but % cannot revoke it from mad_reader: %', quote_ident(owner_name), quote_ident(current_user), SQLERRM
        USING HINT = format('A role with ADMIN OPTION on %I (or a superuser) can run: REVOKE %I FROM mad_reader;', owner_name, owner_name);
    END;
  END LOOP;
END
$$;
