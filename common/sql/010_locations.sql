-- PracticePost schema step 010_locations: who a message comes from, per
-- site of a group, and turning SMS off per practice.
--
-- A location may have its own email From (address and display name) and
-- its own SMS sender id; NULL takes the sending account's. A message uses
-- the identity of its location: the appointment's location for a message
-- about an appointment, else the patient's preferred location (the same
-- location the {{location.*}} merge fields show).

ALTER TABLE locations
    ADD COLUMN email_from_address text
        CHECK (email_from_address ~ '^[^\s<>@]+@[^\s<>@]+$'),
    ADD COLUMN email_from_name text CHECK (email_from_name !~ '[\r\n]'),
    -- Alphanumeric (at most 11 GSM characters) or a number (3 to 15 digits).
    ADD COLUMN sms_sender_id text
        CHECK (sms_sender_id ~ '^([A-Za-z0-9][A-Za-z0-9 .&_-]{0,10}|\+?[0-9]{3,15})$');

-- The sender id an outgoing SMS must carry (its location's); NULL: the
-- account's sender_id at the time it is sent. from_addr shows the one in
-- effect when the message was composed.
ALTER TABLE messages
    ADD COLUMN sms_sender_id text
        CHECK (sms_sender_id ~ '^([A-Za-z0-9][A-Za-z0-9 .&_-]{0,10}|\+?[0-9]{3,15})$');

-- sms_provider: 'kannel' (the sms_accounts speak Kannel's sendsms) or
-- 'none': the practice sends no SMS at all. sms_fallback: what an
-- automatic message for a patient who prefers SMS becomes while the
-- practice cannot send SMS (provider none, or no enabled SMS account):
-- 'email' (when the patient has an address) or 'none' (nothing).
ALTER TABLE practices
    ADD COLUMN sms_provider text NOT NULL DEFAULT 'kannel'
        CHECK (sms_provider IN ('kannel', 'none')),
    ADD COLUMN sms_fallback text NOT NULL DEFAULT 'email'
        CHECK (sms_fallback IN ('email', 'none'));

-- The gateway's status page (Kannel: http://HOST:ADMIN-PORT/status.xml)
-- for `practicepost sms test`; status_secret is its status or admin
-- password in pp_secret's stored form. The URL carries no credentials.
ALTER TABLE sms_accounts
    ADD COLUMN status_url text
        CHECK (status_url ~ '^https?://[^/?#@\s]+(/[^?#@\s]*)?$'),
    ADD COLUMN status_secret text;

-- pp_sms_off - NULL when practice can send SMS, else why not.
CREATE FUNCTION pp_sms_off(practice bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    -- no FROM at the top: the planner inlines it into a batch's query
    SELECT CASE
        WHEN (SELECT p.sms_provider FROM practices p WHERE p.id = practice) = 'none' THEN
            format('SMS is turned off for practice %s (SMS provider none)', practice)
        WHEN NOT EXISTS (SELECT 1 FROM sms_accounts a WHERE a.practice_id = practice
                         AND a.enabled) THEN
            format('practice %s has no enabled SMS account', practice)
    END
$$;
