-- PracticePost schema step 003_composer: what the composer needs beyond v1.
-- Cc/Bcc recipients and attachments of compose requests, copying the
-- specialist, the iCalendar options of templates and requests, and the one
-- recipient rule the CLI and the composer both apply.

-- copy_specialist: the request's specialist gets a copy (Cc).
-- attach_ics: NULL takes the template's setting; 'none', 'request'
-- (confirmation, METHOD:REQUEST) or 'cancel' (METHOD:CANCEL) override it.
ALTER TABLE compose_requests
    ADD COLUMN copy_specialist boolean NOT NULL DEFAULT false,
    ADD COLUMN attach_ics text CHECK (attach_ics IN ('none', 'request', 'cancel'));

-- attach_ics: whether messages made from the template carry the
-- appointment as an .ics file. ics_alarm_minutes: the reminder alarm,
-- minutes before the start; NULL for none. ics_summary: the event's title,
-- a one-line merge template; NULL for "Appointment at {{practice.name}}".
ALTER TABLE templates
    ADD COLUMN attach_ics text NOT NULL DEFAULT 'none'
        CHECK (attach_ics IN ('none', 'request', 'cancel')),
    ADD COLUMN ics_alarm_minutes integer DEFAULT 60
        CHECK (ics_alarm_minutes IS NULL OR ics_alarm_minutes BETWEEN 0 AND 40320),
    ADD COLUMN ics_summary text CHECK (ics_summary IS NULL OR ics_summary !~ '[\r\n]');

-- Cc and Bcc of a compose request: people, never bare addresses, so the
-- composer can check who they are (pp_recipient_refusal).
CREATE TABLE compose_request_recipients (
    request_id  bigint NOT NULL REFERENCES compose_requests ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('cc', 'bcc')),
    person_id   bigint NOT NULL REFERENCES people,
    PRIMARY KEY (request_id, person_id)
);

-- Files to attach, in id order; copied to the message's attachments.
CREATE TABLE compose_request_attachments (
    id          bigserial PRIMARY KEY,
    request_id  bigint NOT NULL REFERENCES compose_requests ON DELETE CASCADE,
    filename    text NOT NULL CHECK (filename <> '' AND octet_length(filename) <= 255
                                     AND filename !~ '[/\\[:cntrl:]]'
                                     AND filename NOT IN ('.', '..')),
    content_type text NOT NULL DEFAULT 'application/octet-stream'
                CHECK (content_type ~ '^[!-~]+/[!-~]+( *;[ -~]*)?$'),
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compose_request_attachments_request ON compose_request_attachments (request_id, id);
CREATE INDEX attachments_message ON attachments (message_id);

-- pp_recipient_refusal - NULL if person `recipient` may receive a copy of
-- a message for patient `patient`, else the rule it breaks. Allowed: staff,
-- providers and specialists of the patient's practice, and patients of the
-- patient's family (same family_id); never another patient, and never an
-- address that is also the address of another patient outside the family.
CREATE FUNCTION pp_recipient_refusal(patient bigint, recipient bigint) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT CASE
    WHEN r.id IS NULL THEN
        format('refused: recipient %s does not exist', recipient)
    WHEN r.id = p.id THEN NULL
    WHEN r.practice_id <> p.practice_id THEN
        format('refused: recipient %s (%s) does not belong to practice %s',
               r.id, r.kind, p.practice_id)
    WHEN r.kind = 'patient' AND (p.family_id IS NULL OR r.family_id IS DISTINCT FROM p.family_id) THEN
        format('refused: recipient %s (patient) is not in patient %s''s family', r.id, p.id)
    WHEN other.id IS NOT NULL THEN
        format('refused: recipient %s (%s) has the email address of patient %s, who is not in '
               'patient %s''s family', r.id, r.kind, other.id, p.id)
END
FROM people p
LEFT JOIN people r ON r.id = recipient
LEFT JOIN LATERAL (
    SELECT o.id FROM people o
    WHERE o.practice_id = p.practice_id AND o.kind = 'patient' AND o.id <> p.id
      AND r.email IS NOT NULL AND lower(o.email) = lower(r.email)
      AND (p.family_id IS NULL OR o.family_id IS DISTINCT FROM p.family_id)
    ORDER BY o.id LIMIT 1) other ON true
WHERE p.id = patient
$$;
