-- Large models (issue 14): versions of any size up to 2 GB, stored in chunks.
--
-- A bytea holds at most 1 GB, and a push through mad.push_model(bytea) holds the whole model in the server's memory
-- (the bind message, sha256(), the TOAST write) and in the client's. A version larger than one chunk is stored
-- instead as rows of mad.model_chunks (model, version, n, bytes), n = 0, 1, …, as PostgresML's pgml.files does;
-- model_versions.onnx is NULL for it and model_versions.chunks counts its chunks. Versions stored before this
-- migration, and small ones, keep their bytes in onnx (chunks = 0): every existing reader of onnx keeps working for
-- them, and readers of large versions read the chunks in order (ModelAsData.Postgres.Registry.PostgresVersionBytes).
--
-- A chunked push is one transaction of three calls: mad.begin_push (the version row, pending, with its size and
-- chunk count), mad.push_chunk once per chunk, and mad.finish_push (every chunk there, the sizes add up; the sha256
-- over the whole that the client computed as it read the file; the 'pushed' notification). A push killed half way rolls
-- back: nothing is left. The server cannot hash 2 GB without holding it, so the sha256 is the pusher's claim (a
-- mad_admin, who may push any model anyway); every load hashes the bytes read and refuses a version whose hash
-- differs, so a corrupt or missing chunk is never served, and a sidecar rejects such a version at validation.
--
-- Readers stay who they are: chunks are readable by mad_admin and mad_sidecar, as model_versions.onnx is (008);
-- mad_user reads model_versions.chunks (a count, like size_bytes) but no bytes; devices read a ready version's chunks
-- through mad.device_version_chunk, as they read onnx through mad.device_version_bytes (023).

UPDATE mad.settings SET value = '2147483591',
  description = 'The largest model a push accepts, in bytes (2 GiB less 57 bytes, the largest array .NET holds; ONNX''s own limit is 2 GiB). Versions larger than a chunk are stored in mad.model_chunks.'
WHERE name = 'max_model_bytes' AND value = '268435456';

CREATE OR REPLACE FUNCTION mad.max_model_bytes() RETURNS bigint
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT mad.setting_int('max_model_bytes', 2147483591);
$$;

ALTER TABLE mad.model_versions ALTER COLUMN onnx DROP NOT NULL;
ALTER TABLE mad.model_versions ADD COLUMN chunks int NOT NULL DEFAULT 0 CHECK (chunks >= 0);
ALTER TABLE mad.model_versions ADD CONSTRAINT model_versions_bytes_stored CHECK ((onnx IS NULL) = (chunks > 0));
GRANT SELECT (chunks) ON mad.model_versions TO mad_user;

CREATE TABLE mad.model_chunks (
  model text NOT NULL,
  version int NOT NULL,
  n int NOT NULL CHECK (n >= 0),
  bytes bytea NOT NULL CHECK (length(bytes) > 0),
  PRIMARY KEY (model, version, n),
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version) ON DELETE CASCADE
);

-- As model_versions.onnx: weights hardly compress.
ALTER TABLE mad.model_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

GRANT SELECT ON mad.model_chunks TO mad_admin, mad_sidecar;

-- Opens a chunked push: checks what mad.push_model checks, takes the next version number (the model row's lock
-- serialises pushes of one model until this transaction ends) and records the version pending, its bytes to come.
CREATE FUNCTION mad.begin_push(name text, size_bytes bigint, chunks int, metadata jsonb DEFAULT '{}') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := begin_push.name;
  limit_bytes bigint := mad.max_model_bytes();
  new_version int;
BEGIN
  PERFORM mad.require_role('mad_admin', 'push models');
  PERFORM mad.check_name(model_name, 'model');
  IF begin_push.size_bytes IS NULL OR begin_push.size_bytes <= 0 THEN
    RAISE EXCEPTION 'The model % is empty (0 bytes): push the bytes of an .onnx file.', quote_literal(model_name)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF begin_push.size_bytes > limit_bytes THEN
    RAISE EXCEPTION 'The model % is % bytes; the limit is % bytes.', quote_literal(model_name), begin_push.size_bytes, limit_bytes
      USING ERRCODE = 'program_limit_exceeded',
            HINT = 'Raise it with: UPDATE mad.settings SET value = ''<bytes>'' WHERE name = ''max_model_bytes'';';
  END IF;
  IF begin_push.chunks IS NULL OR begin_push.chunks < 1 OR begin_push.chunks > begin_push.size_bytes THEN
    RAISE EXCEPTION 'Model % of % bytes cannot be % chunks.', quote_literal(model_name), begin_push.size_bytes, coalesce(begin_push.chunks::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF begin_push.metadata IS NOT NULL AND jsonb_typeof(begin_push.metadata) <> 'object' THEN
    RAISE EXCEPTION 'The metadata of model % must be a JSON object, not %.', quote_literal(model_name), jsonb_typeof(begin_push.metadata)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  INSERT INTO mad.models AS m (name, last_version) VALUES (model_name, 1)
  ON CONFLICT (name) DO UPDATE SET last_version = m.last_version + 1, updated_at = now()
  RETURNING m.last_version INTO new_version;

  -- The sha256 is known once the last chunk is read: mad.finish_push records it, in this transaction.
  INSERT INTO mad.model_versions (model, version, onnx, chunks, sha256, size_bytes, metadata)
  VALUES (model_name, new_version, NULL, begin_push.chunks, repeat('0', 64), begin_push.size_bytes, coalesce(begin_push.metadata, '{}'));
  RETURN new_version;
END
$$;

-- Adds chunk n of a version begin_push opened. A version's bytes never change once there: a chunk is added only to
-- a pending version, only where none is (the primary key), and only below the count begin_push recorded, so a
-- complete version has no room for another.
CREATE FUNCTION mad.push_chunk(model text, version int, n int, bytes bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  expected int;
BEGIN
  PERFORM mad.require_role('mad_admin', 'push models');
  SELECT v.chunks INTO expected FROM mad.model_versions v
  WHERE v.model = push_chunk.model AND v.version = push_chunk.version AND v.status = 'pending';
  IF coalesce(expected, 0) = 0 THEN
    RAISE EXCEPTION 'Model % has no chunked push of version % in progress: open one with mad.begin_push.', quote_literal(push_chunk.model), push_chunk.version
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF push_chunk.n IS NULL OR push_chunk.n < 0 OR push_chunk.n >= expected THEN
    RAISE EXCEPTION 'Model % v% has % chunks (0 to %); there is no chunk %.', quote_literal(push_chunk.model), push_chunk.version, expected, expected - 1, coalesce(push_chunk.n::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF push_chunk.bytes IS NULL OR length(push_chunk.bytes) = 0 THEN
    RAISE EXCEPTION 'Chunk % of model % v% is empty.', push_chunk.n, quote_literal(push_chunk.model), push_chunk.version
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO mad.model_chunks (model, version, n, bytes) VALUES (push_chunk.model, push_chunk.version, push_chunk.n, push_chunk.bytes);
END
$$;

-- Closes a chunked push: every chunk is there and their sizes add up to the version's; records the sha256 over the
-- whole. Then, as mad.push_model does, tells the sidecars (the notification goes out when the caller commits).
CREATE FUNCTION mad.finish_push(model text, version int, sha256 text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  stored mad.model_versions;
  found_chunks int;
  found_bytes bigint;
BEGIN
  PERFORM mad.require_role('mad_admin', 'push models');
  IF finish_push.sha256 IS NULL OR finish_push.sha256 !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'The sha256 of model % must be 64 lower-case hex digits, not %.', quote_literal(finish_push.model), coalesce(quote_literal(finish_push.sha256), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT v.* INTO stored FROM mad.model_versions v
  WHERE v.model = finish_push.model AND v.version = finish_push.version AND v.status = 'pending' AND v.chunks > 0;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Model % has no chunked push of version % in progress.', quote_literal(finish_push.model), finish_push.version
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT count(*), coalesce(sum(length(c.bytes)), 0) INTO found_chunks, found_bytes FROM mad.model_chunks c
  WHERE c.model = finish_push.model AND c.version = finish_push.version;
  IF found_chunks <> stored.chunks OR found_bytes <> stored.size_bytes THEN
    RAISE EXCEPTION 'Model % v% was opened as % bytes in % chunks; % bytes in % chunks arrived.', quote_literal(finish_push.model), finish_push.version,
      stored.size_bytes, stored.chunks, found_bytes, found_chunks
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE mad.model_versions v SET sha256 = finish_push.sha256 WHERE v.model = finish_push.model AND v.version = finish_push.version;
  PERFORM pg_notify('mad_models', json_build_object('event', 'pushed', 'model', finish_push.model, 'version', finish_push.version)::text);
  RETURN finish_push.version;
END
$$;

-- A pull's bytes of a chunked version, one chunk at a time (mad.device_version_bytes returns the onnx column, NULL
-- for these): a ready version's chunk n, for a device to verify (sha256 over the whole) and store.
CREATE FUNCTION mad.device_version_chunk(model text, version int, n int) RETURNS bytea
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  blob bytea;
BEGIN
  PERFORM mad.require_role('mad_device', 'pull model bytes to a device');
  SELECT c.bytes INTO blob FROM mad.model_chunks c JOIN mad.model_versions v USING (model, version)
  WHERE c.model = device_version_chunk.model AND c.version = device_version_chunk.version AND c.n = device_version_chunk.n AND v.status = 'ready';
  IF blob IS NULL THEN
    RAISE EXCEPTION 'Model % has no ready chunked version % with a chunk %; %.', quote_literal(device_version_chunk.model), device_version_chunk.version,
      device_version_chunk.n, mad.describe_versions(device_version_chunk.model) USING ERRCODE = 'no_data_found';
  END IF;
  RETURN blob;
END
$$;

REVOKE ALL ON FUNCTION mad.begin_push(text, bigint, int, jsonb), mad.push_chunk(text, int, int, bytea),
  mad.finish_push(text, int, text), mad.device_version_chunk(text, int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.begin_push(text, bigint, int, jsonb), mad.push_chunk(text, int, int, bytea),
  mad.finish_push(text, int, text) TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.device_version_chunk(text, int, int) TO mad_device;
