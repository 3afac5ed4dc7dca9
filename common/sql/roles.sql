-- roles.sql - least-privilege PostgreSQL roles: one per stage and one for
-- the CLI, each granted only the tables and columns it needs. Not a
-- numbered migration: `practicepost db migrate` runs it after the
-- migrations, every time, in one transaction, so it is idempotent and a
-- migration that adds a table or column needs only its lines here.
--
-- The login that runs `db migrate` (the migration role) owns every table
-- and function and is the only one that changes the schema. The stage
-- roles are NOLOGIN groups; the migrating login is made a member so the
-- daemons and the CLI, connected as it, take theirs with SET ROLE
-- (common/pp_db.c, [database] roles). Functions are SECURITY INVOKER, so
-- what a function or trigger reads and writes is checked against the role
-- that called it: a table a stage's functions or triggers touch is granted
-- to that stage below.
--
-- To add a table: one GRANT block under "Grants" naming each role that
-- uses it (sequences of serial columns follow the INSERT grants by
-- themselves; a trigger function runs as the role that fired it, so grant
-- what it writes to every role that changes its table). A new column
-- needs a line only where a role has a column list: pp_fetcher on messages
-- (SELECT, INSERT, UPDATE) and people (UPDATE), pp_watchdog on messages and
-- email_accounts, pp_composer on email_accounts and sms_accounts,
-- pp_sender on sms_accounts, pp_sms on email_accounts. pp_operator gets
-- every table but those named in its exception at the end.

-- Roles (cluster-wide; one server may hold several practice databases,
-- migrated one after another or at once).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pp_fetcher', 'pp_composer', 'pp_sender', 'pp_sms',
                             'pp_watchdog', 'pp_operator'] LOOP
        IF to_regrole(r) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL; -- created meanwhile
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'cannot create role %: the login % may not create roles', r,
                        current_user
                        USING HINT = 'grant it CREATEROLE, or have a superuser create the '
                            'NOLOGIN roles pp_fetcher, pp_composer, pp_sender, pp_sms, '
                            'pp_watchdog, pp_operator and grant them to it; or set '
                            '[database] roles = off';
            END;
        END IF;
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
    END LOOP;
END
$$;

-- Start from nothing in this database.
REVOKE ALL ON ALL TABLES IN SCHEMA public
    FROM pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog, pp_operator;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public
    FROM pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog, pp_operator;
REVOKE ALL ON SCHEMA public
    FROM pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog, pp_operator;
-- Nobody but the owner creates objects in the schema (PostgreSQL 15's
-- default; older databases restored here may still grant it to PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public
    TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog, pp_operator;

-- Grants ------------------------------------------------------------------

-- Every process checks the schema version and the installation's mark.
GRANT SELECT ON schema_version, installation
    TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog, pp_operator;

-- The audit trail: insert-only for every stage (the trigger refuses
-- UPDATE, DELETE and TRUNCATE even to the owner); the operator reads it.
GRANT INSERT ON audit_log TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog, pp_operator;
GRANT SELECT ON audit_log TO pp_operator;

-- Diagnostics, self-tests and probes: every stage reports.
GRANT SELECT, INSERT, UPDATE ON diagnostics
    TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog;
GRANT SELECT, INSERT, UPDATE, DELETE ON stage_probes
    TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog;
GRANT SELECT, INSERT ON selftest_logs TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog;
GRANT SELECT, INSERT, UPDATE, DELETE ON service_checkins, self_tests TO pp_watchdog;

-- Practice settings the stages read (schedules, holds, zones, proxies).
GRANT SELECT ON practices, send_windows, send_times, locations, practice_holidays, sms_sessions,
    fetch_times, proxy_settings
    TO pp_fetcher, pp_composer, pp_sender, pp_sms, pp_watchdog;
GRANT SELECT ON templates, auto_messages TO pp_composer;

-- Accounts: each stage its own kind; the paused state, the pacing and the
-- poll schedule are written in the claim transactions, OAuth tokens are
-- refreshed by whoever connects. Only the stages that log in to a server
-- read an account's secrets; the others get column lists.
GRANT SELECT, UPDATE ON email_accounts TO pp_fetcher, pp_sender;
GRANT SELECT, UPDATE ON sms_accounts TO pp_sms;
GRANT SELECT (id, practice_id, name, enabled, paused_at, from_address, from_name,
              max_message_bytes)
    ON email_accounts TO pp_composer;
GRANT SELECT (id, practice_id, name, enabled, paused_at, sender_id, rate_tat)
    ON sms_accounts TO pp_composer;
GRANT SELECT (id, practice_id, name, enabled, paused_at, in_enabled, in_protocol, in_next_poll)
    ON email_accounts TO pp_watchdog;
-- (the outbox self-test, shared by the sender and the sms stage, looks at
-- whether the other kind's account is usable)
GRANT SELECT (id, practice_id, enabled, paused_at) ON sms_accounts TO pp_sender;
GRANT SELECT (id, practice_id, enabled, paused_at) ON email_accounts TO pp_sms;
GRANT SELECT, UPDATE ON email_oauth TO pp_fetcher, pp_sender;
GRANT SELECT ON oauth_profiles TO pp_fetcher, pp_sender;
GRANT SELECT ON email_oauth_warnings TO pp_sender;

-- People: the composer and the stages that file read them; the fetcher
-- flags a bounced address and nothing else; the sender only reads (the
-- hold rules look at a patient's zone and opt-outs).
GRANT SELECT ON people TO pp_fetcher, pp_composer, pp_sender, pp_sms;
GRANT UPDATE (email_bounced_at, email_bounce_address, email_bounce_status) ON people
    TO pp_fetcher;
GRANT SELECT ON appointments TO pp_composer, pp_sms;
GRANT UPDATE ON appointments TO pp_sms;
GRANT SELECT, INSERT, UPDATE ON optouts TO pp_fetcher;
GRANT SELECT ON optouts TO pp_composer, pp_sender, pp_sms;
GRANT SELECT, INSERT, UPDATE, DELETE ON sms_optouts TO pp_sms;
GRANT SELECT ON sms_optouts TO pp_composer, pp_sender;

-- Messages. One table holds both directions, so columns decide what the
-- fetcher sees: enough of an outgoing message to file a reply, bounce or
-- unsubscribe against it (Message-ID, unsubscribe token, person,
-- recipients, category) and to find its own stored mail, never a subject,
-- body or part of any message; it writes incoming rows and an outgoing
-- message's delivery outcome.
GRANT SELECT, INSERT, UPDATE, DELETE ON messages TO pp_composer;
GRANT SELECT, UPDATE ON messages TO pp_sender;
GRANT SELECT, INSERT, UPDATE ON messages TO pp_sms;
GRANT SELECT (id, practice_id, direction, channel, state, email_account_id, person_id,
              category, message_id_header, unsubscribe_token, to_addr, cc_addrs, bcc_addrs,
              source_mailbox, source_uidvalidity, source_uid, dedup_key, related_message_id,
              delivery, created_at, sent_at, received_at)
    ON messages TO pp_fetcher;
GRANT INSERT (practice_id, direction, channel, state, email_account_id, person_id, from_addr,
              to_addr, cc_addrs, subject, body, message_id_header, size_bytes, received_at,
              source_mailbox, source_uidvalidity, source_uid, body_text, body_html,
              body_html_safe, content_sha256, dedup_key, parse_error, in_kind,
              related_message_id, filed_by, filed_at, references_header)
    ON messages TO pp_fetcher;
GRANT UPDATE (delivery, delivery_code, delivery_detail, delivery_at, updated_at)
    ON messages TO pp_fetcher;
GRANT SELECT (id, practice_id, direction, channel, state, email_account_id, sms_account_id,
              deliver_after, flagged, attempts, created_at, updated_at, sent_at)
    ON messages TO pp_watchdog;
GRANT SELECT, INSERT ON attachments TO pp_composer;
GRANT INSERT ON attachments TO pp_fetcher;
GRANT SELECT, INSERT ON tags, message_tags, message_people TO pp_fetcher, pp_sms;
GRANT SELECT ON tags, message_tags, message_people TO pp_composer;
GRANT SELECT, INSERT, UPDATE ON mailbox_state, pop3_seen TO pp_fetcher;

-- Composing: requests, automatic messages, recalls.
GRANT SELECT, UPDATE ON compose_requests, recall_batches, recall_items TO pp_composer;
GRANT SELECT ON compose_request_recipients, compose_request_attachments TO pp_composer;
GRANT SELECT, UPDATE, DELETE ON appointment_events, patient_events TO pp_composer;
GRANT SELECT, INSERT, UPDATE, DELETE ON auto_sent TO pp_composer;
GRANT SELECT ON auto_sent TO pp_sms;
-- The triggers on appointments and people (SECURITY INVOKER) record the
-- events for whoever changes them.
GRANT INSERT ON appointment_events TO pp_sms;

-- The operator (CLI): every table, read and write, except the schema's
-- own record and the audit trail (above). It configures everything, and
-- what the practice software changes (people, appointments) fires the
-- event triggers as it.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid::regclass FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v')
               AND c.relname NOT IN ('schema_version', 'audit_log') LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO pp_operator', t);
    END LOOP;
END
$$;

-- Sequences: USAGE on those of the serial columns a role may insert into.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT s.oid::regclass AS seq, g.role
             FROM pg_class s
             JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                 AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             CROSS JOIN unnest(ARRAY['pp_fetcher', 'pp_composer', 'pp_sender', 'pp_sms',
                                     'pp_watchdog', 'pp_operator']) AS g(role)
             WHERE s.relkind = 'S' AND s.relnamespace = 'public'::regnamespace
               AND has_any_column_privilege(g.role, d.refobjid, 'INSERT') LOOP
        EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', r.seq, r.role);
    END LOOP;
END
$$;
