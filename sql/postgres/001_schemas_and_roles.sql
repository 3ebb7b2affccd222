-- Schemas and the three group roles of the security model (DESIGN.md, "Security model").
-- Roles are cluster-wide: another database on the same server may create them at the same moment, so a
-- concurrent creation is not an error. They are NOLOGIN groups: grant them to login roles.

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
