-- Online requests: a caller's first look at its request no longer asks whether its sidecar's ticket is held (issue 13,
-- under load). mad.await_request asks "was the ticket we waited on released and not replaced?" as
-- `current_ticket = waited_ticket AND NOT mad.ticket_held(current_ticket)`; before the first wait waited_ticket is
-- NULL, the comparison is NULL rather than false, and AND goes on to evaluate ticket_held: a try-lock and a query on
-- every call, for an answer that cannot be true (pg_stat_statements: 0.93 per call at one client). The test now
-- starts with `waited_ticket IS NOT NULL`, which is false on the first turn and stops the AND there. The body is
-- 031's otherwise.

CREATE OR REPLACE FUNCTION mad.await_request(request_id bigint)
RETURNS TABLE (status text, result jsonb, error text, error_code text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp SET lock_timeout = 0 AS $$
#variable_conflict use_column
DECLARE
  r mad.requests%ROWTYPE;
  seen record;
  waited_ticket bigint;
  current_ticket bigint;
  remaining_ms bigint;
BEGIN
  LOOP
    -- The request and its sidecar's ticket in one snapshot: read apart, the answer could commit in between, and we
    -- would wait on the new ticket, which nobody releases until the next answer.
    SELECT q AS req, w.ticket AS ticket INTO seen FROM mad.requests q LEFT JOIN mad.request_workers w ON w.sidecar = q.sidecar
    WHERE q.id = await_request.request_id;
    IF FOUND THEN
      r := seen.req;
      current_ticket := seen.ticket;
    ELSE
      RAISE EXCEPTION 'There is no request %.', await_request.request_id USING ERRCODE = 'no_data_found';
    END IF;
    IF r.requested_by <> mad.caller_role() AND NOT pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER') THEN
      RAISE EXCEPTION 'permission denied to read request %: it belongs to %', r.id, quote_ident(r.requested_by) USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF r.status IN ('done', 'failed', 'expired') THEN
      RETURN QUERY SELECT r.status, r.result, r.error, r.error_code;
      RETURN;
    END IF;

    remaining_ms := ceil(extract(epoch FROM r.expires_at - clock_timestamp()) * 1000)::bigint;
    IF remaining_ms <= 0 THEN
      UPDATE mad.requests q SET status = 'expired', answered_at = clock_timestamp(), error_code = '57M01',
        error = format('Sidecar %s did not answer request %s for %s within %s ms (mad.settings predict_timeout_ms). It may be overloaded or stuck: check its log, or start another with `mad serve`.',
                       coalesce(r.sidecar, '(none)'), r.id, r.reference, mad.setting_int('predict_timeout_ms', 10000))
      WHERE q.id = r.id AND q.status IN ('pending', 'running')
      RETURNING q.status, q.error, q.error_code INTO r.status, r.error, r.error_code;
      IF FOUND THEN
        RETURN QUERY SELECT r.status, NULL::jsonb, r.error, r.error_code;
        RETURN;
      END IF;
      CONTINUE; -- answered meanwhile
    END IF;

    IF r.kind = 'async' AND (current_ticket IS NULL OR (waited_ticket IS NOT NULL AND current_ticket = waited_ticket AND NOT mad.ticket_held(current_ticket))) THEN
      -- Assigned to no live sidecar: it waits for one's scan (a killed sidecar's async requests are re-queued), so
      -- look again shortly rather than fail.
      PERFORM pg_catalog.pg_sleep(least(0.05, remaining_ms / 1000.0));
      waited_ticket := NULL;
      CONTINUE;
    END IF;
    IF current_ticket IS NULL OR (waited_ticket IS NOT NULL AND current_ticket = waited_ticket AND NOT mad.ticket_held(current_ticket)) THEN
      -- The ticket we waited on was released without a new one being published: the worker's session ended.
      UPDATE mad.requests q SET status = 'failed', answered_at = clock_timestamp(), error_code = '57M02',
        error = format('Sidecar %s stopped (its database session ended) before it answered request %s for %s. Start `mad serve` again (and check its log), then retry.',
                       coalesce(r.sidecar, '(none)'), r.id, r.reference)
      WHERE q.id = r.id AND q.status IN ('pending', 'running')
      RETURNING q.status, q.error, q.error_code INTO r.status, r.error, r.error_code;
      IF FOUND THEN
        RETURN QUERY SELECT r.status, NULL::jsonb, r.error, r.error_code;
        RETURN;
      END IF;
      CONTINUE;
    END IF;

    waited_ticket := current_ticket;
    BEGIN
      -- A slice, not the whole deadline: whoever queued for the ticket ahead of us may hold it next.
      PERFORM pg_catalog.set_config('lock_timeout', least(remaining_ms, 100)::text, true);
      -- Transaction-level: nothing stays on the session (a pooled one, behind PgBouncer) if the wait is cut short.
      PERFORM pg_catalog.pg_advisory_xact_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(current_ticket));
    EXCEPTION WHEN lock_not_available THEN
      NULL; -- the slice ended: the next turn reads the request again (and expires it at the deadline)
    END;
  END LOOP;
END
$$;
