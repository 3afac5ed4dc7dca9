-- PracticePost schema step 005_inbox: the inbox. Incoming accounts can be
-- switched off and on, POP3 mail can be removed after N days, and every
-- downloaded message keeps its parts (text, HTML, a sanitised copy of the
-- HTML, attachments with size and SHA-256). Messages are de-duplicated per
-- account by Message-ID, or by content hash when there is none, so a reset
-- mailbox counter never files anything twice. Tags, read / actioned /
-- deleted state, bounces, auto-replies and unsubscribes live here, and
-- every change to a message or person made by a stage or an operator is
-- written to audit_log, which is append-only.

-- Incoming: in_enabled false means no connection and no error, with every
-- setting kept; in_delete_after_days removes POP3 mail from the server that
-- many days after it was stored (NULL: leave it on the server); in_idle
-- uses IMAP IDLE when the server offers it.
ALTER TABLE email_accounts
    ADD COLUMN in_enabled boolean NOT NULL DEFAULT true,
    ADD COLUMN in_delete_after_days integer
        CHECK (in_delete_after_days IS NULL OR in_delete_after_days BETWEEN 1 AND 3650),
    ADD COLUMN in_idle boolean NOT NULL DEFAULT true;

-- The check schedule for incoming mail: every in_poll_seconds (NULL: only
-- at preset times) and/or at the practice's preset fetch_times, in its
-- zone; IMAP IDLE, where offered, fetches sooner. pp_next_fetch is the next
-- poll after now(): the earlier of the two, and at the latest a day away.
ALTER TABLE email_accounts ALTER COLUMN in_poll_seconds DROP NOT NULL;
CREATE TABLE fetch_times (
    id          bigserial PRIMARY KEY,
    practice_id bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    at          time NOT NULL,
    UNIQUE (practice_id, at)
);
CREATE FUNCTION pp_next_fetch(account bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(
        now() + a.in_poll_seconds * interval '1 second',
        (SELECT min(date_trunc('day', l.lt) + t.at
                    + CASE WHEN t.at > l.lt::time THEN interval '0' ELSE interval '1 day' END)
         FROM fetch_times t WHERE t.practice_id = a.practice_id) AT TIME ZONE p.time_zone,
        now() + interval '1 day')
    FROM email_accounts a JOIN practices p ON p.id = a.practice_id
    CROSS JOIN LATERAL (SELECT now() AT TIME ZONE p.time_zone AS lt) l
    WHERE a.id = account
$$;

-- POP3: when the fetcher deleted a stored message from the server.
ALTER TABLE pop3_seen ADD COLUMN deleted_at timestamptz;

-- Incoming messages: the parts, how they were filed, and the inbox state.
--   body            the raw message (as valid UTF-8; exact bytes kept as
--                   attachment original.eml when they differ)
--   body_text       the first text/plain part, decoded to UTF-8
--   body_html       the first text/html part, decoded: never shown
--   body_html_safe  body_html without scripts, event handlers, forms and
--                   remote content: the only HTML ever shown
--   parse_error     why a part could not be read (the raw message is kept)
--   in_kind         mail, bounce (a DSN or a known bounce form),
--                   auto_reply (RFC 3834 and common forms: never acted on),
--                   unsubscribe
--   related_message_id  the outgoing message a reply, bounce or
--                   unsubscribe concerns
-- Outgoing messages: what happened after the server accepted them.
--   delivery        delivered | bounced | failed | expired
--   delivery_code   the remote status (e.g. 5.1.1) or the provider's code
ALTER TABLE messages
    ADD COLUMN body_text text,
    ADD COLUMN body_html text,
    ADD COLUMN body_html_safe text,
    ADD COLUMN content_sha256 text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN dedup_key text,
    ADD COLUMN parse_error text,
    ADD COLUMN in_kind text NOT NULL DEFAULT 'mail'
        CHECK (in_kind IN ('mail', 'bounce', 'auto_reply', 'unsubscribe')),
    ADD COLUMN related_message_id bigint REFERENCES messages ON DELETE SET NULL,
    ADD COLUMN filed_by text,
    ADD COLUMN filed_at timestamptz,
    ADD COLUMN read_at timestamptz,
    ADD COLUMN actioned_at timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN delivery text CHECK (delivery IN ('delivered', 'bounced', 'failed', 'expired')),
    ADD COLUMN delivery_code text,
    ADD COLUMN delivery_detail text,
    ADD COLUMN delivery_at timestamptz,
    ADD COLUMN unsubscribe_token text CHECK (unsubscribe_token ~ '^[0-9a-f]{32}$');
-- Message texts and attachment bytes are compressed with lz4, several
-- times faster than the default pglz at a similar ratio for mail.
ALTER TABLE messages
    ALTER COLUMN body SET COMPRESSION lz4,
    ALTER COLUMN body_text SET COMPRESSION lz4,
    ALTER COLUMN body_html SET COMPRESSION lz4,
    ALTER COLUMN body_html_safe SET COMPRESSION lz4;
ALTER TABLE attachments ALTER COLUMN data SET COMPRESSION lz4;
CREATE UNIQUE INDEX messages_incoming_dedup ON messages (email_account_id, dedup_key)
    WHERE direction = 'in' AND dedup_key IS NOT NULL;
CREATE UNIQUE INDEX messages_unsubscribe_token ON messages (unsubscribe_token)
    WHERE unsubscribe_token IS NOT NULL;
CREATE INDEX messages_inbox ON messages (practice_id, received_at DESC)
    WHERE direction = 'in';
CREATE INDEX messages_related ON messages (related_message_id)
    WHERE related_message_id IS NOT NULL;

-- A message filed to a family's guarantor lists every member who shares
-- the sender's address.
CREATE TABLE message_people (
    message_id  bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    person_id   bigint NOT NULL REFERENCES people ON DELETE CASCADE,
    PRIMARY KEY (message_id, person_id)
);

-- Attachments: size, SHA-256 and where in the MIME tree the part was.
ALTER TABLE attachments
    ADD COLUMN size_bytes integer,
    ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN part_path text,
    ADD COLUMN content_id text;

-- Tags: Patient and Specialist are added by filing; others by staff.
-- pp_tag returns the practice's tag of that name, creating it.
ALTER TABLE tags ADD CONSTRAINT tags_name_check
    CHECK (name <> '' AND length(name) <= 64 AND name !~ '[[:cntrl:]]');
-- (Looked up first: an upsert would write the tag's row for every message.)
CREATE FUNCTION pp_tag(practice bigint, tag_name text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    tag bigint;
BEGIN
    SELECT id INTO tag FROM tags WHERE practice_id = practice AND name = tag_name;
    IF tag IS NULL THEN
        INSERT INTO tags (practice_id, name) VALUES (practice, tag_name)
            ON CONFLICT (practice_id, name) DO NOTHING RETURNING id INTO tag;
    END IF;
    IF tag IS NULL THEN
        SELECT id INTO tag FROM tags WHERE practice_id = practice AND name = tag_name;
    END IF;
    RETURN tag;
END
$$;

-- A hard bounce flags the address on the person: the composer refuses to
-- send to it until the address changes or the flag is cleared.
ALTER TABLE people
    ADD COLUMN email_bounced_at timestamptz,
    ADD COLUMN email_bounce_address text,
    ADD COLUMN email_bounce_status text;

-- Opt-outs per message type and channel. Message categories map to types
-- with pp_optout_kind.
CREATE TABLE optouts (
    person_id   bigint NOT NULL REFERENCES people ON DELETE CASCADE,
    channel     message_channel NOT NULL,
    kind        text NOT NULL
        CHECK (kind IN ('reminder', 'confirmation', 'recall', 'welcome', 'general')),
    source      text NOT NULL,   -- "unsubscribe msg=N", "operator:NAME", "sms STOP"
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, channel, kind)
);
CREATE FUNCTION pp_optout_kind(category text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE category
        WHEN 'reminder' THEN 'reminder'
        WHEN 'confirmation' THEN 'confirmation'
        WHEN 'cancellation' THEN 'confirmation'
        WHEN 'recall' THEN 'recall'
        WHEN 'welcome' THEN 'welcome'
        ELSE 'general' END
$$;

-- The audit trail: who did what to which message or person, and when.
-- actor is a stage name ("fetcher"), "rule" for automatic filing, or
-- "operator:NAME". Rows are never changed or removed: the trigger refuses
-- UPDATE, DELETE and TRUNCATE for everyone. A message's timeline
-- (`practicepost inbox info`) is its audit rows in order.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL CHECK (actor <> ''),
    action      text NOT NULL CHECK (action ~ '^[a-z_]+$'),
    practice_id bigint,
    message_id  bigint,
    person_id   bigint,
    detail      text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_message ON audit_log (message_id, id) WHERE message_id IS NOT NULL;
CREATE INDEX audit_log_person ON audit_log (person_id, id) WHERE person_id IS NOT NULL;

CREATE FUNCTION pp_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION pp_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION pp_audit_append_only();

-- Replies and forwards from the inbox go through the composer: a compose
-- request names the incoming message it answers or forwards, and may send
-- to an address instead of the person's own (a reply goes to the sender).
-- references_header keeps an incoming message's References (In-Reply-To
-- when it has none) as received, so a reply's References continue them.
ALTER TABLE messages ADD COLUMN references_header text;
ALTER TABLE compose_requests
    ADD COLUMN reply_to_message_id bigint REFERENCES messages,
    ADD COLUMN forward_of_message_id bigint REFERENCES messages,
    ADD COLUMN to_address text CHECK (to_address IS NULL OR to_address ~ '^[^\s<>@]+@[^\s<>@]+$'),
    ADD COLUMN quote boolean NOT NULL DEFAULT true,
    ADD CHECK (reply_to_message_id IS NULL OR forward_of_message_id IS NULL);
