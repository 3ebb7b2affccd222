-- The model registry: models, immutable versions (the ONNX bytes as a bytea), aliases and their history.
-- Writes go only through the SECURITY DEFINER functions of 003; the roles get SELECT.

CREATE TABLE mad.settings (
  name text PRIMARY KEY,
  value text NOT NULL,
  description text NOT NULL
);

INSERT INTO mad.settings (name, value, description) VALUES
  ('max_model_bytes', '268435456', 'The largest ONNX blob mad.push_model accepts, in bytes (256 MiB).');

CREATE TABLE mad.models (
  name text PRIMARY KEY,
  last_version int NOT NULL DEFAULT 0,
  created_by text NOT NULL DEFAULT session_user,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT models_name_valid CHECK (name ~ '^[a-z_][a-z0-9_]*$' AND length(name) <= 63)
);

CREATE TABLE mad.model_versions (
  model text NOT NULL REFERENCES mad.models (name),
  version int NOT NULL CHECK (version > 0),
  onnx bytea NOT NULL,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes bigint NOT NULL CHECK (size_bytes > 0),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'rejected')),
  reason text,
  signature jsonb,
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_by text NOT NULL DEFAULT session_user,
  created_at timestamptz NOT NULL DEFAULT now(),
  validated_by text,
  validated_at timestamptz,
  PRIMARY KEY (model, version),
  CONSTRAINT model_versions_ready_has_signature CHECK (status <> 'ready' OR signature IS NOT NULL),
  CONSTRAINT model_versions_rejected_has_reason CHECK (status <> 'rejected' OR reason IS NOT NULL)
);

-- ONNX weights hardly compress: store the blob out of line without trying.
ALTER TABLE mad.model_versions ALTER COLUMN onnx SET STORAGE EXTERNAL;

-- Sidecars scan for pending versions on start and after every reconnect.
CREATE INDEX model_versions_pending ON mad.model_versions (created_at) WHERE status = 'pending';

CREATE TABLE mad.aliases (
  model text NOT NULL REFERENCES mad.models (name),
  alias text NOT NULL CHECK (alias ~ '^[a-z_][a-z0-9_]*$' AND length(alias) <= 63),
  version int NOT NULL,
  updated_by text NOT NULL DEFAULT session_user,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (model, alias),
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version)
);

CREATE TABLE mad.alias_history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model text NOT NULL,
  alias text NOT NULL,
  from_version int,
  to_version int NOT NULL,
  kind text NOT NULL CHECK (kind IN ('set', 'rollback')),
  moved_by text NOT NULL DEFAULT session_user,
  -- clock_timestamp, not now(): two moves in one transaction keep their order in time.
  moved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  reason text,
  FOREIGN KEY (model, to_version) REFERENCES mad.model_versions (model, version)
);

CREATE INDEX alias_history_lookup ON mad.alias_history (model, alias, moved_at DESC, id DESC);

GRANT SELECT ON mad.settings, mad.models, mad.model_versions, mad.aliases, mad.alias_history
  TO mad_admin, mad_user, mad_sidecar;
