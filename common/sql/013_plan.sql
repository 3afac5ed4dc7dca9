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
