-- PracticePost schema v1.
-- PostgreSQL is the source of truth; every message state change is one
-- transaction. The message states here are mirrored by pp_state.h.

CREATE TYPE message_state AS ENUM
    ('draft', 'pending_sync', 'sync_failed', 'queued', 'sending', 'sent', 'failed', 'received');
CREATE TYPE message_channel AS ENUM ('email', 'sms');
CREATE TYPE message_direction AS ENUM ('out', 'in');
CREATE TYPE tls_mode AS ENUM ('implicit', 'starttls', 'starttls_optional', 'none');
CREATE TYPE person_kind AS ENUM ('patient', 'provider', 'specialist', 'staff');

CREATE FUNCTION pp_valid_time_zone(tz text) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = tz) $$;

CREATE TABLE practices (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    site            text NOT NULL DEFAULT '',
    time_zone       text NOT NULL DEFAULT 'UTC' CHECK (pp_valid_time_zone(time_zone)),
    mail_domain     text NOT NULL CHECK (mail_domain ~ '^[A-Za-z0-9.-]+$'),
    phone           text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    -- Send schedule: true sends at once; false uses send_windows.
    send_immediately boolean NOT NULL DEFAULT true,
    schedule_check_minutes integer NOT NULL DEFAULT 5 CHECK (schedule_check_minutes >= 1),
    signature_template_id bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, site)
);

-- Send windows in the practice's zone: weekday 0 = Sunday .. 6 = Saturday.
CREATE TABLE send_windows (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    weekday     smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    starts      time NOT NULL,
    ends        time NOT NULL CHECK (ends > starts)
);
CREATE TABLE send_times (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    at          time NOT NULL
);

CREATE TABLE locations (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    name        text NOT NULL,
    address     text NOT NULL DEFAULT '',
    phone       text NOT NULL DEFAULT ''
);

CREATE TABLE email_accounts (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    name            text NOT NULL,
    from_address    text NOT NULL CHECK (from_address ~ '^[^\s<>@]+@[^\s<>@]+$'),
    from_name       text NOT NULL DEFAULT '' CHECK (from_name !~ '[\r\n]'),
    -- Outgoing (SMTP).
    smtp_host       text NOT NULL DEFAULT '',
    smtp_port       integer NOT NULL DEFAULT 587 CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls        tls_mode NOT NULL DEFAULT 'starttls',
    smtp_auth       boolean NOT NULL DEFAULT true,
    smtp_username   text NOT NULL DEFAULT '',
    smtp_secret     text,               -- pp_secret stored form, never plaintext
    smtp_ca_file    text,
    smtp_verify     boolean NOT NULL DEFAULT true,
    -- Incoming (IMAP or POP3).
    in_protocol     text NOT NULL DEFAULT 'none' CHECK (in_protocol IN ('imap', 'pop3', 'none')),
    in_host         text NOT NULL DEFAULT '',
    in_port         integer NOT NULL DEFAULT 993 CHECK (in_port BETWEEN 1 AND 65535),
    in_tls          tls_mode NOT NULL DEFAULT 'implicit',
    in_username     text NOT NULL DEFAULT '',
    in_secret       text,
    in_ca_file      text,
    in_verify       boolean NOT NULL DEFAULT true,
    in_mailbox      text NOT NULL DEFAULT 'INBOX',
    in_poll_seconds integer NOT NULL DEFAULT 60 CHECK (in_poll_seconds >= 1),
    in_next_poll    timestamptz NOT NULL DEFAULT now(),
    in_claimed_by   text,
    in_lease_until  timestamptz,
    -- Pacing (GCRA: rate_tat is the theoretical arrival time of the next send).
    per_minute      integer NOT NULL DEFAULT 40 CHECK (per_minute >= 1),
    daily_cap       integer CHECK (daily_cap IS NULL OR daily_cap >= 1),
    sent_today      integer NOT NULL DEFAULT 0,
    sent_day        date,
    rate_tat        timestamptz NOT NULL DEFAULT '-infinity',
    parallel_connections integer NOT NULL DEFAULT 1 CHECK (parallel_connections BETWEEN 1 AND 32),
    max_message_bytes integer NOT NULL DEFAULT 10485760 CHECK (max_message_bytes > 0),
    paused_at       timestamptz,
    paused_reason   text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (practice_id, name)
);

CREATE TABLE sms_accounts (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    name            text NOT NULL,
    url             text NOT NULL CHECK (url ~ '^https?://'),
    username        text NOT NULL DEFAULT '',
    secret          text,
    sender_id       text NOT NULL DEFAULT '',
    ca_file         text,
    verify          boolean NOT NULL DEFAULT true,
    per_minute      integer NOT NULL DEFAULT 60 CHECK (per_minute >= 1),
    rate_tat        timestamptz NOT NULL DEFAULT '-infinity',
    paused_at       timestamptz,
    paused_reason   text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (practice_id, name)
);

CREATE TABLE people (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    kind            person_kind NOT NULL DEFAULT 'patient',
    external_id     text,
    title           text NOT NULL DEFAULT '',
    first_name      text NOT NULL DEFAULT '',
    last_name       text NOT NULL DEFAULT '',
    email           text,
    mobile          text,
    family_id       bigint,             -- patients of one family share it
    guarantor_id    bigint REFERENCES people,
    preferred_channel text NOT NULL DEFAULT 'email'
                    CHECK (preferred_channel IN ('email', 'sms', 'none')),
    preferred_location_id bigint REFERENCES locations,
    date_of_birth   date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (practice_id, external_id)
);
CREATE INDEX people_email ON people (practice_id, lower(email));
CREATE INDEX people_family ON people (family_id);

CREATE TABLE appointments (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    patient_id      bigint NOT NULL REFERENCES people,
    provider_id     bigint REFERENCES people,
    location_id     bigint REFERENCES locations,
    starts_at       timestamptz NOT NULL,
    duration_minutes integer NOT NULL DEFAULT 30 CHECK (duration_minutes > 0),
    status          text NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    sequence        integer NOT NULL DEFAULT 0,
    description     text NOT NULL DEFAULT '',
    booking_link    text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appointments_starts ON appointments (practice_id, starts_at);

CREATE TABLE templates (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]+$'),
    channel         message_channel NOT NULL DEFAULT 'email',
    description     text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    body            text NOT NULL,
    format          text NOT NULL DEFAULT 'text' CHECK (format IN ('text', 'html')),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (practice_id, code)
);
ALTER TABLE practices ADD FOREIGN KEY (signature_template_id) REFERENCES templates;

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    direction       message_direction NOT NULL,
    channel         message_channel NOT NULL,
    state           message_state NOT NULL,
    email_account_id bigint REFERENCES email_accounts,
    sms_account_id  bigint REFERENCES sms_accounts,
    person_id       bigint REFERENCES people,       -- the patient it is filed against
    appointment_id  bigint REFERENCES appointments,
    template_id     bigint REFERENCES templates,
    category        text NOT NULL DEFAULT '',
    description     text NOT NULL DEFAULT '',
    from_addr       text NOT NULL DEFAULT '',
    to_addr         text NOT NULL DEFAULT '',
    cc_addrs        text NOT NULL DEFAULT '',
    bcc_addrs       text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    body            text NOT NULL DEFAULT '',  -- SMS text, or the complete MIME message
    message_id_header text,                    -- RFC 5322 Message-ID, fixed at compose time
    size_bytes      integer NOT NULL DEFAULT 0,
    flagged         boolean NOT NULL DEFAULT false,
    send_now        boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    last_code       integer,
    last_error      text,
    server_reply    text,
    provider_ref    text,                      -- e.g. the SMS provider's id
    deliver_after   timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    received_at     timestamptz,
    -- Incoming mail: where it came from.
    source_mailbox  text,
    source_uidvalidity bigint,
    source_uid      text,
    CHECK ((direction = 'in') = (state = 'received')),
    CHECK (direction = 'in' OR channel <> 'email' OR email_account_id IS NOT NULL),
    CHECK (direction = 'in' OR channel <> 'sms' OR sms_account_id IS NOT NULL),
    CHECK (state <> 'sending' OR (claimed_by IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK (attempts >= 0)
);
CREATE INDEX messages_outbox ON messages (channel, deliver_after)
    WHERE state IN ('queued', 'sending');
CREATE INDEX messages_queued_email ON messages (email_account_id, deliver_after)
    WHERE state = 'queued' AND direction = 'out';
CREATE INDEX messages_queued_sms ON messages (sms_account_id, deliver_after)
    WHERE state = 'queued' AND direction = 'out';
CREATE INDEX messages_person ON messages (person_id, created_at);
-- Replies are filed by the Message-ID of the outgoing message they answer.
CREATE INDEX messages_out_message_id ON messages (message_id_header) WHERE direction = 'out';
CREATE UNIQUE INDEX messages_incoming_source ON messages
    (email_account_id, source_mailbox, source_uidvalidity, source_uid)
    WHERE direction = 'in' AND source_uid IS NOT NULL;

CREATE TABLE attachments (
    id          bigserial PRIMARY KEY,
    message_id  bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    filename    text NOT NULL,
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tags (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    name        text NOT NULL,
    UNIQUE (practice_id, name)
);
CREATE TABLE message_tags (
    message_id  bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    tag_id      bigint NOT NULL REFERENCES tags ON DELETE CASCADE,
    PRIMARY KEY (message_id, tag_id)
);

-- Where each incoming mailbox was read up to.
CREATE TABLE mailbox_state (
    email_account_id bigint NOT NULL REFERENCES email_accounts ON DELETE CASCADE,
    mailbox     text NOT NULL,
    uidvalidity bigint NOT NULL,
    last_uid    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email_account_id, mailbox)
);
-- POP3 has no UID ranges: remember every UIDL seen.
CREATE TABLE pop3_seen (
    email_account_id bigint NOT NULL REFERENCES email_accounts ON DELETE CASCADE,
    uidl        text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email_account_id, uidl)
);

-- One row per running stage instance, written by the watchdog.
CREATE TABLE service_checkins (
    stage       text NOT NULL,
    instance    text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    state       text NOT NULL,
    started_at  timestamptz NOT NULL,
    last_heartbeat timestamptz,
    checked_in_at timestamptz NOT NULL DEFAULT now(),
    restarts    integer NOT NULL DEFAULT 0,
    counters    jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (host, stage, instance)
);

CREATE TABLE self_tests (
    id          bigserial PRIMARY KEY,
    stage       text NOT NULL,
    instance    text NOT NULL,
    check_name  text NOT NULL,
    ok          boolean NOT NULL,
    detail      text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE diagnostics (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    stage       text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    practice_id bigint REFERENCES practices ON DELETE CASCADE,
    email_account_id bigint REFERENCES email_accounts ON DELETE CASCADE,
    sms_account_id bigint REFERENCES sms_accounts ON DELETE CASCADE,
    code        text NOT NULL,
    text        text NOT NULL,
    resolved_at timestamptz
);
CREATE INDEX diagnostics_open ON diagnostics (created_at) WHERE resolved_at IS NULL;

-- Compose requests put in by the practice software or the CLI: either a
-- template (template_code) or free text (subject/body). The composer turns
-- each into one message row, in one transaction.
CREATE TABLE compose_requests (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    template_code text,
    channel     message_channel,               -- NULL: the template's channel
    person_id   bigint NOT NULL REFERENCES people,
    appointment_id bigint REFERENCES appointments,
    provider_id bigint REFERENCES people,
    specialist_id bigint REFERENCES people,
    email_account_id bigint REFERENCES email_accounts,  -- NULL: the practice's first
    sms_account_id bigint REFERENCES sms_accounts,
    subject     text,
    body        text,
    category    text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    add_signature boolean NOT NULL DEFAULT false,
    draft       boolean NOT NULL DEFAULT false,
    send_now    boolean NOT NULL DEFAULT false,
    deliver_after timestamptz,
    state       text NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'done', 'failed')),
    error       text,
    message_id  bigint REFERENCES messages,
    claimed_by  text,
    lease_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    CHECK (template_code IS NOT NULL OR (body IS NOT NULL AND channel IS NOT NULL))
);
CREATE INDEX compose_requests_new ON compose_requests (created_at) WHERE state = 'new';
