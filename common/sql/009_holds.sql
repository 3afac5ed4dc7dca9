-- PracticePost schema step 009_holds: rules that hold a message back in
-- the outbox claim, for both channels, so no path can bypass them:
--   - opt-outs per message type and channel (optouts, 005_inbox.sql): the
--     message is flagged for staff with the reason and never sent;
--   - practice holidays: nothing automatic goes out on a closed date;
--   - quiet hours, in the patient's own time zone (else the practice's);
--   - a per-patient cap of automatic messages a day and a week (per channel).
-- A held message keeps its place in the queue: its deliver_after moves to
-- when the rule lets it go and hold_reason says why (shown in the outbox).
-- It is never dropped. Automatic means a message of an automatic type
-- (reminder, confirmation, cancellation, welcome, recall: pp_optout_kind is
-- not 'general') that staff did not mark "send now".
--
-- Staggered SMS: a practice may send SMS only within its delivery sessions
-- (a weekday or a date, start and end time in the practice's zone), one
-- message every sms_every (the SMS account's rate state spaces them across
-- every sms instance). "send now" overrides staggering, never a draft.

CREATE TABLE practice_holidays (
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    day         date NOT NULL,
    name        text NOT NULL DEFAULT '' CHECK (name !~ '[\r\n]'),
    PRIMARY KEY (practice_id, day)
);

-- quiet_start .. quiet_end: no automatic message goes out (may wrap past
-- midnight, e.g. 20:00 .. 08:00). cap_per_day / cap_per_week: automatic
-- messages of one channel to one patient per calendar day (practice zone)
-- and per rolling 7 days. sms_mode 'all' sends SMS as soon as they are
-- queued; 'staggered' only in sms_sessions, one every sms_every.
-- sms_warn_days: `sms plan` warns when a batch would take longer.
ALTER TABLE practices
    ADD COLUMN quiet_start time,
    ADD COLUMN quiet_end time,
    ADD COLUMN cap_per_day integer CHECK (cap_per_day IS NULL OR cap_per_day BETWEEN 1 AND 1000),
    ADD COLUMN cap_per_week integer
        CHECK (cap_per_week IS NULL OR cap_per_week BETWEEN 1 AND 10000),
    ADD COLUMN sms_mode text NOT NULL DEFAULT 'all' CHECK (sms_mode IN ('all', 'staggered')),
    ADD COLUMN sms_every interval NOT NULL DEFAULT '1 minute'
        CHECK (sms_every >= interval '1 second' AND sms_every <= interval '1 day'),
    ADD COLUMN sms_warn_days integer NOT NULL DEFAULT 3 CHECK (sms_warn_days BETWEEN 1 AND 365),
    ADD CONSTRAINT practices_quiet_hours CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)
        AND (quiet_start IS NULL OR quiet_start <> quiet_end));

-- A patient's own time zone (NULL: the practice's), for quiet hours.
ALTER TABLE people
    ADD COLUMN time_zone text CHECK (time_zone IS NULL OR pp_valid_time_zone(time_zone));

ALTER TABLE messages ADD COLUMN hold_reason text;

-- Delivery sessions: added and deleted, never edited.
CREATE TABLE sms_sessions (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    weekday     smallint CHECK (weekday BETWEEN 0 AND 6),   -- 0 = Sunday
    day         date,
    starts      time NOT NULL,
    ends        time NOT NULL CHECK (ends > starts),
    CHECK ((weekday IS NULL) <> (day IS NULL))
);
CREATE INDEX sms_sessions_practice ON sms_sessions (practice_id);

-- pp_message_automatic - whether a message counts as automatic.
CREATE FUNCTION pp_message_automatic(category text, send_now boolean) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT NOT send_now AND pp_optout_kind(category) <> 'general'
$$;

-- pp_practice_next_open_day - the first day after today (practice zone)
-- that is not a holiday, as the instant of its midnight.
CREATE FUNCTION pp_practice_next_open_day(practice bigint, today date, tz text)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT min(d)::timestamp AT TIME ZONE tz
    FROM generate_series(today + 1, today + 400, interval '1 day') d
    WHERE NOT EXISTS (SELECT 1 FROM practice_holidays h
                      WHERE h.practice_id = practice AND h.day = d::date)
$$;

-- pp_practice_has_holds - whether any rule but an opt-out can hold a
-- practice's automatic messages now (the claim asks once per account and
-- skips pp_outbox_hold for messages no rule can touch).
CREATE FUNCTION pp_practice_has_holds(practice bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p.quiet_start IS NOT NULL OR p.cap_per_day IS NOT NULL
           OR p.cap_per_week IS NOT NULL
           OR EXISTS (SELECT 1 FROM practice_holidays h WHERE h.practice_id = p.id
                      AND h.day = (now() AT TIME ZONE p.time_zone)::date)
    FROM practices p WHERE p.id = practice
$$;

-- pp_outbox_hold - why an outgoing message must not go now, if it must
-- not: hold_until (NULL: until staff act), reason, stop (flag it). rank is
-- the message's place among the automatic messages to the same person in
-- the same claim (1 for the first), so one claim cannot pass the cap.
-- No row: the message may go. pp_outbox_hold_at asks the same at any
-- instant (the claim asks now(); `practicepost plan` a day ahead).
CREATE FUNCTION pp_outbox_hold_at(practice bigint, person bigint, chan message_channel,
                                  category text, send_now boolean, rank bigint,
                                  at_time timestamptz)
RETURNS TABLE (hold_until timestamptz, reason text, stop boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.hold_until, r.reason, r.stop FROM (
        SELECT NULL::timestamptz AS hold_until,
               format('opted out of %s messages by %s (%s)', o.kind, o.channel, o.source)
                   AS reason, true AS stop, 1 AS rule
        FROM optouts o
        WHERE o.person_id = person AND o.channel = chan AND o.kind = pp_optout_kind(category)
          AND category <> 'sms_control'
        UNION ALL
        SELECT pp_practice_next_open_day(p.id, l.today, p.time_zone),
               format('practice holiday %s%s', h.day,
                      CASE WHEN h.name <> '' THEN ' (' || h.name || ')' ELSE '' END),
               false, 2
        FROM practices p
        CROSS JOIN LATERAL (SELECT (at_time AT TIME ZONE p.time_zone)::date AS today) l
        JOIN practice_holidays h ON h.practice_id = p.id AND h.day = l.today
        WHERE p.id = practice AND pp_message_automatic(category, send_now)
        UNION ALL
        SELECT ((CASE WHEN q.lt::time < p.quiet_end THEN q.lt::date ELSE q.lt::date + 1 END)
                    + p.quiet_end) AT TIME ZONE z.tz,
               format('quiet hours %s-%s (%s)', to_char(p.quiet_start, 'HH24:MI'),
                      to_char(p.quiet_end, 'HH24:MI'), z.tz),
               false, 3
        FROM practices p
        LEFT JOIN people pe ON pe.id = person
        CROSS JOIN LATERAL (SELECT coalesce(pe.time_zone, p.time_zone) AS tz) z
        CROSS JOIN LATERAL (SELECT at_time AT TIME ZONE z.tz AS lt) q
        WHERE p.id = practice AND p.quiet_start IS NOT NULL
          AND pp_message_automatic(category, send_now)
          AND CASE WHEN p.quiet_start < p.quiet_end
                   THEN q.lt::time >= p.quiet_start AND q.lt::time < p.quiet_end
                   ELSE q.lt::time >= p.quiet_start OR q.lt::time < p.quiet_end END
        UNION ALL
        SELECT greatest(
                   CASE WHEN c.day_n + rank - 1 >= p.cap_per_day
                        THEN (l.today + 1)::timestamp AT TIME ZONE p.time_zone END,
                   CASE WHEN c.week_n + rank - 1 >= p.cap_per_week
                        THEN coalesce(c.week_first, at_time) + interval '7 days' END),
               format('cap of %s automatic %s message(s) a %s reached',
                      CASE WHEN c.day_n + rank - 1 >= p.cap_per_day THEN p.cap_per_day
                           ELSE p.cap_per_week END, chan,
                      CASE WHEN c.day_n + rank - 1 >= p.cap_per_day THEN 'day'
                           ELSE 'week' END),
               false, 4
        FROM practices p
        CROSS JOIN LATERAL (SELECT (at_time AT TIME ZONE p.time_zone)::date AS today) l
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE t.at >= l.today::timestamp AT TIME ZONE p.time_zone)
                       AS day_n,
                   count(*) AS week_n, min(t.at) AS week_first
            FROM messages m CROSS JOIN LATERAL (SELECT coalesce(m.sent_at, m.updated_at) AS at) t
            WHERE m.person_id = person AND m.channel = chan AND m.direction = 'out'
              AND m.state IN ('sending', 'sent') AND t.at > at_time - interval '7 days'
              AND pp_message_automatic(m.category, m.send_now)) c
        WHERE p.id = practice AND person IS NOT NULL
          AND pp_message_automatic(category, send_now)
          AND (c.day_n + rank - 1 >= p.cap_per_day OR c.week_n + rank - 1 >= p.cap_per_week)
    ) r ORDER BY r.rule LIMIT 1
$$;

CREATE FUNCTION pp_outbox_hold(practice bigint, person bigint, chan message_channel,
                                          category text, send_now boolean, rank bigint)
RETURNS TABLE (hold_until timestamptz, reason text, stop boolean)
LANGUAGE sql STABLE AS $$
    SELECT * FROM pp_outbox_hold_at(practice, person, chan, category, send_now, rank, now())
$$;

-- pp_sms_session_end - for a practice that staggers SMS: the end of the
-- delivery session open at `at` ('-infinity' when none is open); NULL when
-- the practice sends SMS as soon as they are queued.
CREATE FUNCTION pp_sms_session_end(practice bigint, at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p.sms_mode <> 'staggered' THEN NULL
           ELSE coalesce((SELECT max((l.lt::date + s.ends) AT TIME ZONE p.time_zone)
                          FROM sms_sessions s
                          WHERE s.practice_id = p.id
                            AND (s.weekday = extract(dow FROM l.lt) OR s.day = l.lt::date)
                            AND l.lt::time >= s.starts AND l.lt::time < s.ends),
                         '-infinity'::timestamptz) END
    FROM practices p CROSS JOIN LATERAL (SELECT at AT TIME ZONE p.time_zone AS lt) l
    WHERE p.id = practice
$$;

-- pp_sms_interval - the spacing of an SMS account's sends: its own rate,
-- or the practice's sms_every when staggering, whichever is longer; a
-- staggered slot is dealt 200 ms more apart, the most a request may start
-- late (the sms stage gives a later one back), so no two start closer than
-- sms_every. NULL: no spacing at all (an unlimited account that does not
-- stagger).
CREATE FUNCTION pp_sms_interval(practice bigint, per_minute integer)
RETURNS interval LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p.sms_mode = 'staggered'
            THEN greatest(p.sms_every, interval '1 minute' / per_minute) + interval '200 ms'
        WHEN per_minute >= 60000 THEN NULL
        ELSE interval '1 minute' / per_minute END
    FROM practices p WHERE p.id = practice
$$;

-- pp_sms_plan - the next n sending slots of a practice that staggers SMS,
-- from `start` on: every sms_every within each delivery session, holidays
-- skipped, at most 400 days ahead.
CREATE FUNCTION pp_sms_plan(practice bigint, start timestamptz, n integer)
RETURNS SETOF timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    p practices;
    d date;
    s record;
    t timestamptz;
    left_ integer := n;
BEGIN
    SELECT * INTO p FROM practices WHERE id = practice;
    IF NOT FOUND OR n <= 0 THEN
        RETURN;
    END IF;
    d := (start AT TIME ZONE p.time_zone)::date;
    WHILE left_ > 0 AND d <= (start AT TIME ZONE p.time_zone)::date + 400 LOOP
        IF NOT EXISTS (SELECT 1 FROM practice_holidays h
                       WHERE h.practice_id = practice AND h.day = d) THEN
            FOR s IN SELECT ss.starts, ss.ends FROM sms_sessions ss
                     WHERE ss.practice_id = practice
                       AND (ss.weekday = extract(dow FROM d) OR ss.day = d)
                     ORDER BY ss.starts LOOP
                t := (d + s.starts) AT TIME ZONE p.time_zone;
                IF t < start THEN
                    -- the first slot of this session at or after start
                    t := t + ceil(extract(epoch FROM start - t)
                                  / extract(epoch FROM p.sms_every)) * p.sms_every;
                END IF;
                WHILE left_ > 0 AND t < (d + s.ends) AT TIME ZONE p.time_zone LOOP
                    RETURN NEXT t;
                    left_ := left_ - 1;
                    t := t + p.sms_every;
                END LOOP;
            END LOOP;
        END IF;
        d := d + 1;
    END LOOP;
END
$$;

-- pp_sms_planned - when each queued SMS of a staggered practice is due to
-- go, in the order the claim takes them ("send now" ones are not paced).
CREATE FUNCTION pp_sms_planned(practice bigint)
RETURNS TABLE (message_id bigint, planned timestamptz) LANGUAGE sql STABLE AS $$
    WITH q AS (
        SELECT m.id, row_number() OVER (ORDER BY m.deliver_after, m.id) AS k
        FROM messages m
        WHERE m.practice_id = practice AND m.channel = 'sms' AND m.direction = 'out'
          AND m.state = 'queued' AND NOT m.send_now AND NOT m.flagged),
    s AS (
        SELECT t, row_number() OVER (ORDER BY t) AS k
        FROM pp_sms_plan(practice,
                         greatest(now(), (SELECT max(a.rate_tat) FROM sms_accounts a
                                          WHERE a.practice_id = practice AND a.enabled)),
                         (SELECT count(*)::int FROM q)) t)
    SELECT q.id, s.t FROM q LEFT JOIN s ON s.k = q.k
$$;

-- The answer to a keyword a number texted (HELP, STOP, START: category
-- 'sms_control', naming the incoming text it answers) goes even to a
-- number opted out of SMS: a HELP must always be answered.
CREATE OR REPLACE FUNCTION pp_sms_opted_out(practice bigint, number text, message bigint)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM sms_optouts o WHERE o.practice_id = practice
        AND right(regexp_replace(number, '[^0-9]', '', 'g'), length(o.national)) = o.national
        AND o.ack_message_id IS DISTINCT FROM message)
       AND NOT EXISTS (SELECT 1 FROM messages m JOIN messages i ON i.id = m.related_message_id
                       WHERE m.id = message AND m.category = 'sms_control'
                         AND i.direction = 'in' AND i.channel = 'sms'
                         AND i.from_addr = m.to_addr)
$$;

-- The SMS claim takes an account's due messages in (deliver_after, id)
-- order, "send now" ones first: the same indexes the email claim has, so
-- neither look scans the whole queue (002_sender.sql).
DROP INDEX messages_queued_sms;
CREATE INDEX messages_queued_sms ON messages (sms_account_id, deliver_after, id)
    WHERE state = 'queued' AND direction = 'out';
CREATE INDEX messages_send_now_sms ON messages (sms_account_id, deliver_after, id)
    WHERE state = 'queued' AND direction = 'out' AND send_now;
