-- PracticePost schema step 007_sms: two-way SMS. Delivery reports and
-- incoming texts arrive at the sms stage's callback endpoint; each SMS
-- account has a secret the callback URLs carry. Numbers are normalised to
-- E.164 with the practice's country. A patient who texts STOP is opted out
-- of SMS by number; the outbox claim never hands out a message to an
-- opted-out number, except the one text that confirms the opt-out. A yes to
-- a reminder confirms the appointments the reminder covered.

-- The secret of the callback URLs (dlr-url and the sms-service get-url):
-- 32 hex digits, compared in constant time by the endpoint.
ALTER TABLE sms_accounts
    ADD COLUMN callback_secret text NOT NULL
        DEFAULT md5(gen_random_uuid()::text || clock_timestamp()::text)
        CHECK (callback_secret ~ '^[0-9a-f]{32}$');

-- country: ISO 3166-1 alpha-2 code for numbers written without their
-- country code (NULL: only international numbers are accepted).
-- sms_confirm_words: the replies that confirm a reminder (NULL: the
-- built-in list). sms_max_segments: a longer text is refused at compose.
-- sms_validity_minutes: how long the SMS centre keeps trying (NULL: its
-- default).
ALTER TABLE practices
    ADD COLUMN country text CHECK (country ~ '^[A-Z]{2}$'),
    ADD COLUMN sms_confirm_words text[],
    ADD COLUMN sms_max_segments integer NOT NULL DEFAULT 3
        CHECK (sms_max_segments BETWEEN 1 AND 10),
    ADD COLUMN sms_validity_minutes integer
        CHECK (sms_validity_minutes IS NULL OR sms_validity_minutes BETWEEN 5 AND 10080);

-- Opt-outs by number (STOP .. START). national is the number without its
-- country code: the claim blocks every form of the number ("+49 170 ...",
-- "0170 ...") by its last digits, erring towards not sending.
-- ack_message_id is the one text that confirms the opt-out.
CREATE TABLE sms_optouts (
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    phone           text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{5,14}$'),
    national        text NOT NULL CHECK (national ~ '^[0-9]{4,14}$'),
    source          text NOT NULL,
    ack_message_id  bigint REFERENCES messages ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (practice_id, phone)
);

-- pp_sms_opted_out - whether an outgoing SMS to number must not go out.
CREATE FUNCTION pp_sms_opted_out(practice bigint, number text, message bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM sms_optouts o WHERE o.practice_id = practice
        AND right(regexp_replace(number, '[^0-9]', '', 'g'), length(o.national)) = o.national
        AND o.ack_message_id IS DISTINCT FROM message)
$$;

-- Incoming SMS are de-duplicated per account by the gateway's message id.
CREATE UNIQUE INDEX messages_incoming_sms_dedup ON messages (sms_account_id, dedup_key)
    WHERE direction = 'in' AND channel = 'sms' AND dedup_key IS NOT NULL;
-- Replies look for the latest SMS sent to a number.
CREATE INDEX messages_sms_sent ON messages (practice_id, sent_at DESC)
    WHERE direction = 'out' AND channel = 'sms' AND state = 'sent';

-- Who confirmed an appointment, and when: "sms +491701234567" or
-- "operator:NAME"; confirmed_message_id is the reply that did it.
ALTER TABLE appointments
    ADD COLUMN confirmed_at timestamptz,
    ADD COLUMN confirmed_by text,
    ADD COLUMN confirmed_message_id bigint REFERENCES messages ON DELETE SET NULL;
