-- Online shadow (issue 15, docs/DEPLOYMENTS.md): CALL mad.predict and mad.predict_async under a deployment with a
-- shadow. Whether the shadow samples a request is decided where its canary arm is, in the caller's transaction before
-- the request commits (mad.route_request): by the key's bucket under the deployment's seed and the shadow's percent,
-- or, without a key, a random draw at the percent. The sidecar answers the request with the served version as ever,
-- then, off the caller's path (a bounded queue: full, it drops and counts), scores it with the shadow version and logs
-- that in mad.prediction_log with arm 'shadow', the shadow version and the request's id. HTTP samples the same way in
-- the sidecar (parameters.key).

-- The shadow version that samples the request (NULL: none), as visible as its version and arm.
ALTER TABLE mad.requests ADD COLUMN shadow_version int;
GRANT SELECT (shadow_version) ON mad.requests TO mad_user;

-- 017's mad.route_request, with one change (marked 025): the shadow's sampling.
CREATE OR REPLACE FUNCTION mad.route_request(request_id bigint, key text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  request mad.requests%ROWTYPE;
  deployed mad.deployments%ROWTYPE;
BEGIN
  -- Only the caller's own request, once, while it waits: a key is the caller's to choose anyway.
  SELECT * INTO request FROM mad.requests r
  WHERE r.id = route_request.request_id AND r.requested_by = mad.caller_role() AND r.status = 'pending' AND r.arm = 'champion';
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT * INTO deployed FROM mad.deployments d
  WHERE d.model = request.model AND d.alias = mad.reference_alias(request.reference);
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF deployed.canary_version IS NOT NULL AND coalesce(mad.bucket(deployed.seed, route_request.key), random()) < deployed.canary_percent / 100 THEN
    UPDATE mad.requests r SET version = deployed.canary_version, arm = 'canary' WHERE r.id = request.id;
  END IF;
  IF deployed.shadow_version IS NOT NULL AND coalesce(mad.bucket(deployed.seed, route_request.key), random()) < deployed.shadow_percent / 100 THEN  -- 025
    UPDATE mad.requests r SET shadow_version = deployed.shadow_version WHERE r.id = request.id;
  END IF;
END
$$;

-- 017's mad.log_arm, with one change (marked 025): a shadow entry keeps its arm (its request's arm is the served one's).
CREATE OR REPLACE FUNCTION mad.log_arm() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  IF NEW.request_id IS NOT NULL AND NEW.arm IS DISTINCT FROM 'shadow' THEN  -- 025
    NEW.arm := coalesce((SELECT r.arm FROM mad.requests r WHERE r.id = NEW.request_id), NEW.arm);
  END IF;
  RETURN NEW;
END
$$;
