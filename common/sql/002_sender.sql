-- PracticePost schema step 002_sender: the sender's send schedule and
-- STARTTLS fallback port.
--
-- Send schedule of a practice (all in the practice's time zone):
--   * send_immediately: a message may go as soon as its deliver_after is
--     reached (the rate limit still applies).
--   * otherwise mail is looked at by "checks": every schedule_check_minutes
--     minutes counted from local midnight (00:00, 00:N, 00:2N, ...; NULL =
--     no periodic checks) and at each preset time in send_times. A queued
--     message is eligible at instant t when
--        (a) the local time at t lies inside one of the practice's send
--            windows for that weekday (starts <= time < ends), or the
--            practice has no windows at all (the whole day is open), and
--        (b) the last check at or before t (the later of the last N-minute
--            tick and the last preset time, today's or else yesterday's)
--            is not earlier than the message's deliver_after.
--     So a message that falls due at 10:07 with checks every 15 minutes
--     goes at 10:15 if a window is open then; one that falls due outside
--     every window goes when the next window opens (a check has passed
--     since it fell due). Outside a window messages wait; nothing is
--     dropped. A manual "send now" (messages.send_now) skips (a) and (b).
-- pp_schedule_cutoff(practice, t) returns the instant a message's
-- deliver_after must not exceed to be eligible at t: t itself when sending
-- immediately, the last check inside an open window, '-infinity' when no
-- window is open (or no check has ever happened).

-- NULL now means "preset times only".
ALTER TABLE practices ALTER COLUMN schedule_check_minutes DROP NOT NULL;
ALTER TABLE practices ALTER COLUMN schedule_check_minutes SET DEFAULT 5;
ALTER TABLE practices ADD CONSTRAINT practices_schedule_check_minutes_range
    CHECK (schedule_check_minutes IS NULL OR schedule_check_minutes <= 1440);

CREATE INDEX send_windows_practice ON send_windows (practice_id, weekday);
CREATE INDEX send_times_practice ON send_times (practice_id);

CREATE FUNCTION pp_schedule_cutoff(practice bigint, at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p.send_immediately THEN at
        WHEN EXISTS (SELECT 1 FROM send_windows w WHERE w.practice_id = p.id)
             AND NOT EXISTS (SELECT 1 FROM send_windows w
                             WHERE w.practice_id = p.id
                               AND w.weekday = extract(dow FROM l.lt)
                               AND l.lt::time >= w.starts AND l.lt::time < w.ends)
            THEN '-infinity'::timestamptz
        ELSE coalesce(greatest(
            -- the last N-minute tick since local midnight
            date_trunc('day', l.lt) + floor(extract(epoch FROM l.lt - date_trunc('day', l.lt))
                / 60 / p.schedule_check_minutes) * p.schedule_check_minutes
                * interval '1 minute',
            -- the last preset time: today's, else yesterday's last
            coalesce((SELECT max(date_trunc('day', l.lt) + s.at) FROM send_times s
                      WHERE s.practice_id = p.id AND s.at <= l.lt::time),
                     (SELECT max(date_trunc('day', l.lt) - interval '1 day' + s.at)
                      FROM send_times s WHERE s.practice_id = p.id))
            ) AT TIME ZONE p.time_zone, '-infinity'::timestamptz)
    END
    FROM practices p CROSS JOIN LATERAL (SELECT at AT TIME ZONE p.time_zone AS lt) l
    WHERE p.id = practice
$$;

-- Port on which smtp_tls = 'starttls_optional' may fall back to plain
-- text. Every other port requires STARTTLS whatever the mode says, so
-- "optional" only ever applies to MTA-to-MTA relaying on port 25 (or the
-- port an operator names for such a relay).
ALTER TABLE email_accounts ADD COLUMN smtp_optional_tls_port integer NOT NULL DEFAULT 25
    CHECK (smtp_optional_tls_port BETWEEN 1 AND 65535);

-- The claim takes an account's due messages in (deliver_after, id) order
-- with a LIMIT: an index in that order spares it a sort of the queue.
DROP INDEX messages_queued_email;
CREATE INDEX messages_queued_email ON messages (email_account_id, deliver_after, id)
    WHERE state = 'queued' AND direction = 'out';
-- Messages marked "send now" (few), and the held ones by lease expiry
-- (looked at by every claim): small indexes, so neither look scans the queue.
CREATE INDEX messages_send_now ON messages (email_account_id, deliver_after, id)
    WHERE state = 'queued' AND direction = 'out' AND send_now;
CREATE INDEX messages_sending_lease ON messages (lease_until) WHERE state = 'sending';
