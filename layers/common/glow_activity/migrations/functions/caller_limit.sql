-- One request of a caller against its limit (CONTRACT.md, "A limit per caller"): a token bucket of `per_minute`
-- tokens that refills at per_minute / 60 a second, so that no caller has more than per_minute requests served in
-- any 60 seconds but for the refill during a burst. One call per request, on the writer, in its own transaction.
--
-- allowed:       whether this request may be served (a refusal takes no token)
-- remaining:     whole tokens left after it
-- reset_seconds: seconds until the next token (when none is left) or until the bucket is full again
-- audit_refusal: a refusal that should be audited as any call is: the caller's first in this minute. Later ones of
--                the same minute are counted in the bucket and written as one audit row (with their count) by the
--                caller's first request of a later minute, or by the schedule's housekeeping
--                (activity.flush_refusals below): a flood never becomes a write to the audit log per refused request.
CREATE OR REPLACE FUNCTION activity.take_request(
    p_caller uuid, p_per_minute integer, p_operation text, p_channel text, p_request_id text
) RETURNS TABLE (allowed boolean, remaining integer, reset_seconds integer, audit_refusal boolean)
LANGUAGE plpgsql AS $$
DECLARE
    b        activity.caller_requests%ROWTYPE;
    v_now    timestamptz := clock_timestamp();
    v_minute timestamptz := date_trunc('minute', v_now);
    v_rate   double precision := p_per_minute / 60.0;  -- tokens a second
    v_tokens double precision;
BEGIN
    SELECT * INTO b FROM activity.caller_requests c WHERE c.caller = p_caller FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO activity.caller_requests (caller, tokens, refilled_at) VALUES (p_caller, p_per_minute, v_now)
        ON CONFLICT (caller) DO NOTHING;
        SELECT * INTO b FROM activity.caller_requests c WHERE c.caller = p_caller FOR UPDATE;
    END IF;
    v_tokens := least(p_per_minute::double precision,
                      b.tokens + v_rate * greatest(0, extract(epoch FROM v_now - b.refilled_at)));
    IF b.refused > 0 AND b.refused_minute < v_minute THEN  -- an earlier minute's further refusals: one row for them
        INSERT INTO activity.audit_log (at, operation, profile_id, channel, status_code, request_id, count)
        VALUES (b.refused_minute, b.refused_operation, p_caller, b.refused_channel, 429,
                b.refused_request || '+', b.refused);
        b.refused := 0;
    END IF;
    IF v_tokens >= 1 THEN
        v_tokens := v_tokens - 1;
        UPDATE activity.caller_requests c SET tokens = v_tokens, refilled_at = v_now, refused = b.refused
        WHERE c.caller = p_caller;
        RETURN QUERY SELECT true, floor(v_tokens)::integer,
            ceil(CASE WHEN v_tokens < 1 THEN 1 - v_tokens ELSE p_per_minute - v_tokens END / v_rate)::integer, false;
    ELSIF b.refused_minute IS DISTINCT FROM v_minute THEN  -- this minute's first refusal: audited as any call
        UPDATE activity.caller_requests c
        SET tokens = v_tokens, refilled_at = v_now, refused_minute = v_minute, refused = 0,
            refused_operation = p_operation, refused_channel = p_channel, refused_request = p_request_id
        WHERE c.caller = p_caller;
        RETURN QUERY SELECT false, 0, greatest(1, ceil((1 - v_tokens) / v_rate))::integer, true;
    ELSE
        UPDATE activity.caller_requests c SET tokens = v_tokens, refilled_at = v_now, refused = b.refused + 1
        WHERE c.caller = p_caller;
        RETURN QUERY SELECT false, 0, greatest(1, ceil((1 - v_tokens) / v_rate))::integer, false;
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION activity.take_request(uuid, integer, text, text, text) TO activity_runtime;

-- The schedule's housekeeping: every finished minute's further refusals become their audit row (the caller may not
-- come back to write it), and buckets idle for an hour, full again long since, are dropped.
CREATE OR REPLACE FUNCTION activity.flush_refusals() RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH old AS (
        SELECT caller, refused_minute, refused, refused_operation, refused_channel, refused_request
        FROM activity.caller_requests
        WHERE refused > 0 AND refused_minute < date_trunc('minute', clock_timestamp())
        FOR UPDATE
    ), cleared AS (
        UPDATE activity.caller_requests c SET refused = 0 FROM old WHERE c.caller = old.caller
    ), idle AS (
        DELETE FROM activity.caller_requests
        WHERE refilled_at < clock_timestamp() - interval '1 hour' AND refused = 0
          AND caller NOT IN (SELECT caller FROM old)
    ), written AS (
        INSERT INTO activity.audit_log (at, operation, profile_id, channel, status_code, request_id, count)
        SELECT refused_minute, refused_operation, caller, refused_channel, 429, refused_request || '+', refused
        FROM old
        RETURNING 1
    )
    SELECT count(*)::integer FROM written
$$;
GRANT EXECUTE ON FUNCTION activity.flush_refusals() TO activity_runtime;
