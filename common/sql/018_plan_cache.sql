-- PracticePost schema step 018_plan_cache: the claim's helper functions
-- keep their plans.
--
-- pp_schedule_cutoff, pp_sms_session_end and pp_sms_opted_out were SQL
-- functions with a FROM clause, which PostgreSQL cannot inline: it planned
-- each of them afresh for every claim and every account query (about a
-- third of a millisecond each, more than running them). As PL/pgSQL they
-- are planned once per connection. Same arguments, same answers.

CREATE OR REPLACE FUNCTION pp_schedule_cutoff(practice bigint, at timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT CASE
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
    WHERE p.id = practice);
END
$$;

CREATE OR REPLACE FUNCTION pp_sms_session_end(practice bigint, at timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT CASE WHEN p.sms_mode <> 'staggered' THEN NULL
           ELSE coalesce((SELECT max((l.lt::date + s.ends) AT TIME ZONE p.time_zone)
                          FROM sms_sessions s
                          WHERE s.practice_id = p.id
                            AND (s.weekday = extract(dow FROM l.lt) OR s.day = l.lt::date)
                            AND l.lt::time >= s.starts AND l.lt::time < s.ends),
                         '-infinity'::timestamptz) END
    FROM practices p CROSS JOIN LATERAL (SELECT at AT TIME ZONE p.time_zone AS lt) l
    WHERE p.id = practice);
END
$$;

CREATE OR REPLACE FUNCTION pp_sms_opted_out(practice bigint, number text, message bigint)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM sms_optouts o WHERE o.practice_id = practice
        AND right(regexp_replace(number, '[^0-9]', '', 'g'), length(o.national)) = o.national
        AND o.ack_message_id IS DISTINCT FROM message)
       AND NOT EXISTS (SELECT 1 FROM messages m JOIN messages i ON i.id = m.related_message_id
                       WHERE m.id = message AND m.category = 'sms_control'
                         AND i.direction = 'in' AND i.channel = 'sms'
                         AND i.from_addr = m.to_addr);
END
$$;
