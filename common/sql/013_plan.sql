-- PracticePost schema step 013_plan: the rules of automatic messages as
-- functions, so the composer and `practicepost plan` (the dry run: who
-- gets what, when, by which channel, and why not) read one definition:
--   (the outbox holds at any instant: pp_outbox_hold_at, 009_holds.sql)
--   pp_auto_channel      the channel and template of an automatic message
--                        for a patient, or why nothing is sent
--   pp_reminders_due     the reminders due by an instant, not yet made
--   pp_reminder_group    the family appointments one reminder covers
--   pp_family_reminder   the recipient and appointment list of a family
--                        reminder
--   pp_schedule_release  when the send schedule (002_sender.sql) first lets
--                        a message go, and why not sooner
--   pp_sms_slot          the first delivery-session slot of a practice that
--                        staggers SMS at which its send window is open

-- pp_auto_channel - for an automatic message to person made from
-- email_template and/or sms_template (either may be NULL): the template
-- and channel to use; or skip (nothing is sent, and that is the patient's
-- or the practice's choice); or refusal (the message cannot be made).
-- The patient's preferred channel wins when it can be sent (SMS needs an
-- SMS template, a mobile number and a practice that can send SMS), else
-- the other one; "none" sends nothing. While the practice cannot send SMS
-- (pp_sms_off), a patient who prefers SMS gets email only if its
-- sms_fallback is 'email'. An email chosen for a patient without an
-- address is refused when it is composed. No row: no such person.
CREATE FUNCTION pp_auto_channel(practice bigint, person bigint, email_template text,
                                sms_template text)
RETURNS TABLE (template_code text, channel text, skip text, refusal text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN d.outcome = 'sms' THEN sms_template
                WHEN d.outcome = 'email' THEN email_template END,
           CASE WHEN d.outcome IN ('sms', 'email') THEN d.outcome END,
           CASE d.outcome
               WHEN 'none' THEN format('patient %s wants no messages', c.id)
               WHEN 'sms_off_prefers' THEN
                   format('patient %s prefers SMS; %s and its SMS fallback is none', c.id,
                          c.sms_off)
               WHEN 'sms_off_skip' THEN
                   format('%s and patient %s has no email address', c.sms_off, c.id) END,
           CASE d.outcome
               WHEN 'sms_off_refuse' THEN
                   format('%s and patient %s has no email address', c.sms_off, c.id)
               WHEN 'no_mobile' THEN
                   format('person %s has no mobile number for the SMS template "%s"', c.id,
                          sms_template) END
    FROM (SELECT pe.id, pe.preferred_channel AS pref,
                 email_template IS NOT NULL AND te.id IS NOT NULL
                     AND coalesce(pe.email, '') <> '' AS email_ok,
                 sms_template IS NOT NULL AND ts.id IS NOT NULL
                     AND coalesce(pe.mobile, '') <> '' AS sms_able,
                 pp_sms_off(practice) AS sms_off, pr.sms_provider = 'none' AS provider_none,
                 pr.sms_fallback = 'email' AS fallback_email
          FROM people pe JOIN practices pr ON pr.id = practice
          LEFT JOIN templates te ON te.practice_id = practice AND te.code = email_template
          LEFT JOIN templates ts ON ts.practice_id = practice AND ts.code = sms_template
          WHERE pe.id = person) c
    CROSS JOIN LATERAL (SELECT c.sms_able AND c.sms_off IS NULL AS sms_ok) s
    CROSS JOIN LATERAL (SELECT CASE
        WHEN c.pref = 'none' THEN 'none'
        WHEN c.sms_able AND c.sms_off IS NOT NULL
             AND NOT (c.email_ok AND (c.pref <> 'sms' OR c.fallback_email)) THEN
            CASE WHEN c.email_ok THEN 'sms_off_prefers'
                 WHEN c.provider_none THEN 'sms_off_skip'
                 ELSE 'sms_off_refuse' END
        WHEN (c.pref = 'sms' AND s.sms_ok) OR (NOT c.email_ok AND s.sms_ok) THEN 'sms'
        WHEN email_template IS NULL THEN 'no_mobile'
        ELSE 'email' END AS outcome) d
$$;

-- pp_reminders_due - each enabled reminder rule's booked, future
-- appointments whose reminder is due by until_at (offset_minutes before
-- the start) and not yet made; due_at is when the composer makes it (now,
-- if it is overdue). practice NULL: every practice.
CREATE FUNCTION pp_reminders_due(practice bigint, until_at timestamptz)
RETURNS TABLE (rule_id bigint, practice_id bigint, appointment_id bigint, patient_id bigint,
               family_id bigint, starts_at timestamptz, due_at timestamptz,
               family_window_minutes integer, template_code text, sms_template_code text,
               family_template_code text, family_sms_template_code text)
LANGUAGE sql STABLE AS $$
    SELECT r.id, r.practice_id, a.id, a.patient_id, pe.family_id, a.starts_at,
           greatest(a.starts_at - make_interval(mins => r.offset_minutes), now()),
           r.family_window_minutes, r.template_code, r.sms_template_code,
           r.family_template_code, r.family_sms_template_code
    FROM auto_messages r
    JOIN appointments a ON a.practice_id = r.practice_id AND a.status = 'booked'
        AND a.starts_at > now()
        AND a.starts_at <= until_at + make_interval(mins => r.offset_minutes)
    JOIN people pe ON pe.id = a.patient_id
    WHERE r.kind = 'reminder' AND r.enabled AND (practice IS NULL OR r.practice_id = practice)
      AND NOT EXISTS (SELECT 1 FROM auto_sent s WHERE s.kind = 'reminder'
                      AND s.auto_message_id = r.id AND s.appointment_id = a.id)
$$;

-- pp_reminder_group - the family's appointments one reminder of rule
-- covers: same practice and local day, starting within window_minutes
-- after lead_start, not yet reminded by the rule (at most 50).
CREATE FUNCTION pp_reminder_group(rule bigint, family bigint, practice bigint,
                                  lead_start timestamptz, window_minutes integer)
RETURNS TABLE (appointment_id bigint, patient_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT a.id, a.patient_id FROM appointments a JOIN people p ON p.id = a.patient_id
    JOIN practices pr ON pr.id = a.practice_id
    WHERE p.family_id = family AND a.practice_id = practice AND a.status = 'booked'
      AND a.starts_at > now() AND a.starts_at >= lead_start
      AND a.starts_at <= lead_start + make_interval(mins => window_minutes)
      AND (a.starts_at AT TIME ZONE pr.time_zone)::date
          = (lead_start AT TIME ZONE pr.time_zone)::date
      AND NOT EXISTS (SELECT 1 FROM auto_sent s WHERE s.kind = 'reminder'
                      AND s.auto_message_id = rule AND s.appointment_id = a.id)
    ORDER BY a.starts_at, a.id LIMIT 50
$$;

-- pp_family_reminder - the one message of a family reminder over the
-- appointments: its recipient (the guarantor when a member names one in
-- the family, else the member seen first), the appointment merged (the
-- recipient's own, else the first) and {{family.appointments}}.
CREATE FUNCTION pp_family_reminder(appointments bigint[])
RETURNS TABLE (person_id bigint, appointment_id bigint, appointments_text text)
LANGUAGE sql STABLE AS $$
    WITH g AS (SELECT a.id, a.patient_id, a.starts_at, p.first_name, p.last_name,
                      p.family_id, p.guarantor_id, p.practice_id, pr.time_zone,
                      row_number() OVER (ORDER BY a.starts_at, a.id) AS n
               FROM appointments a JOIN people p ON p.id = a.patient_id
               JOIN practices pr ON pr.id = a.practice_id
               WHERE a.id = ANY(appointments)),
    r AS (SELECT coalesce((SELECT gu.id FROM g JOIN people gu ON gu.id = g.guarantor_id
                           AND gu.kind = 'patient' AND gu.practice_id = g.practice_id
                           AND gu.family_id = g.family_id ORDER BY g.n LIMIT 1),
                          (SELECT g.patient_id FROM g WHERE g.n = 1)) AS id)
    SELECT r.id,
           coalesce((SELECT g.id FROM g WHERE g.patient_id = r.id ORDER BY g.n LIMIT 1),
                    (SELECT g.id FROM g WHERE g.n = 1)),
           (SELECT string_agg(concat_ws(' ', nullif(g.first_name, ''), nullif(g.last_name, ''))
                              || ': ' || to_char(g.starts_at AT TIME ZONE g.time_zone,
                                                 'FMDay FMDD FMMonth YYYY')
                              || ' at ' || to_char(g.starts_at AT TIME ZONE g.time_zone,
                                                   'HH24:MI'), E'\n' ORDER BY g.n) FROM g)
    FROM r
$$;

-- pp_schedule_open - whether the practice's send windows are open at `at`
-- (sending immediately, or no windows at all: always).
CREATE FUNCTION pp_schedule_open(practice bigint, at timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT p.send_immediately
           OR NOT EXISTS (SELECT 1 FROM send_windows w WHERE w.practice_id = p.id)
           OR EXISTS (SELECT 1 FROM send_windows w
                      WHERE w.practice_id = p.id AND w.weekday = extract(dow FROM l.lt)
                        AND l.lt::time >= w.starts AND l.lt::time < w.ends)
    FROM practices p CROSS JOIN LATERAL (SELECT at AT TIME ZONE p.time_zone AS lt) l
    WHERE p.id = practice
$$;

-- pp_schedule_release - the first instant at which the claim's schedule
-- rule (pp_schedule_cutoff(practice, t) >= due) lets a message due at
-- `due` go, with the reason when that is later than due. Sending
-- immediately: due. Otherwise the first check (N-minute tick or preset
-- time) at or after due, if a send window is open then, else the next
-- window opening after that check (a check has passed by then). No row
-- when the practice has no checks at all (nothing would ever go).
CREATE FUNCTION pp_schedule_release(practice bigint, due timestamptz)
RETURNS TABLE (release_at timestamptz, reason text) LANGUAGE sql STABLE AS $$
    WITH l AS (
        SELECT p.id, p.send_immediately, p.schedule_check_minutes AS every, p.time_zone AS tz,
               due AT TIME ZONE p.time_zone AS lt,
               date_trunc('day', due AT TIME ZONE p.time_zone) AS midnight
        FROM practices p WHERE p.id = practice),
    c AS (
        SELECT l.*, least(
            CASE WHEN l.every IS NOT NULL THEN least(
                l.midnight + ceil(extract(epoch FROM l.lt - l.midnight) / 60 / l.every)
                             * l.every * interval '1 minute',
                l.midnight + interval '1 day') END,
            (SELECT min(CASE WHEN l.midnight + s.at >= l.lt THEN l.midnight + s.at
                             ELSE l.midnight + interval '1 day' + s.at END)
             FROM send_times s WHERE s.practice_id = l.id)) AS check_lt
        FROM l),
    r AS (
        SELECT c.*, CASE
            WHEN c.send_immediately THEN c.lt
            WHEN pp_schedule_open(c.id, c.check_lt AT TIME ZONE c.tz) THEN c.check_lt
            ELSE (SELECT min(d + w.starts)
                  FROM generate_series(date_trunc('day', c.check_lt),
                                       date_trunc('day', c.check_lt) + interval '7 days',
                                       interval '1 day') d
                  JOIN send_windows w ON w.practice_id = c.id
                      AND w.weekday = extract(dow FROM d)
                  WHERE d + w.starts > c.check_lt) END AS release_lt
        FROM c WHERE c.send_immediately OR c.check_lt IS NOT NULL)
    SELECT r.release_lt AT TIME ZONE r.tz,
           CASE WHEN r.release_lt = r.lt THEN NULL
                WHEN r.release_lt = r.check_lt THEN
                    format('send schedule: next check at %s', to_char(r.check_lt, 'HH24:MI'))
                ELSE format('send schedule: no send window open until %s',
                            to_char(r.release_lt, 'FMDy HH24:MI')) END
    FROM r WHERE r.release_lt IS NOT NULL
$$;

-- pp_sms_slot - for a practice that staggers SMS: the first slot of its
-- delivery sessions at or after `start` (pp_sms_plan, 200 at a time) at
-- which its send window is open too; NULL when none in the next 10 000.
CREATE FUNCTION pp_sms_slot(practice bigint, start timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    t timestamptz;
    from_ timestamptz := start;
    last_ timestamptz;
BEGIN
    FOR i IN 1..50 LOOP
        last_ := NULL;
        FOR t IN SELECT s FROM pp_sms_plan(practice, from_, 200) s LOOP
            IF pp_schedule_open(practice, t) THEN
                RETURN t;
            END IF;
            last_ := t;
        END LOOP;
        IF last_ IS NULL THEN
            RETURN NULL;
        END IF;
        from_ := last_ + interval '1 microsecond';
    END LOOP;
    RETURN NULL;
END
$$;
