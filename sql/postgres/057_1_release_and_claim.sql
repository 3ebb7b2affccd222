-- Online requests: after a batch of answers the worker releases its old ticket and claims again in one statement
-- (issue 13, under load). Since 011 the round trip that writes a batch of answers carried three statements, each its
-- own transaction (mad.answer_requests, mad.release_ticket, mad.claim_requests), each checking mad.require_role:
-- four role checks and four transactions per busy batch counting the notification's claim. The release must follow
-- the answers' commit (a waiter woken earlier reads its request unanswered), but nothing orders it against the claim:
-- mad.release_and_claim does both, so a batch costs two statements and two role checks.
--
-- The release is a session advisory unlock: it takes effect at once, not at commit, and pg_advisory_unlock only
-- releases a lock this session holds, so the function can release nobody else's ticket. The claim is 041's without
-- the scan (the notification's claim and the poll's scan stay with mad.claim_requests).

CREATE FUNCTION mad.release_and_claim(ticket bigint, sidecar text, max_rows int)
RETURNS TABLE (id bigint, kind text, reference text, model text, version int, features text, shadow_version int)
LANGUAGE plpgsql SECURITY DEFINER ROWS 256 SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  me text := release_and_claim.sidecar;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  -- Wakes the procedures waiting for the batch just committed.
  PERFORM pg_catalog.pg_advisory_unlock(mad.lock_key('request_ticket'), mad.ticket_key(release_and_claim.ticket));
  RETURN QUERY
    UPDATE mad.requests r SET status = 'running', sidecar = me, claimed_at = clock_timestamp()
    WHERE r.id IN (
      SELECT q.id FROM mad.requests q
      WHERE q.status = 'pending' AND q.expires_at > clock_timestamp() AND q.sidecar = me
      ORDER BY q.id
      LIMIT release_and_claim.max_rows
      FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.kind, r.reference, r.model, r.version, r.features::text, r.shadow_version;
END
$$;

REVOKE ALL ON FUNCTION mad.release_and_claim(bigint, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.release_and_claim(bigint, text, int) TO mad_sidecar;
