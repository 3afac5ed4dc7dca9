-- PracticePost schema step 016_audit: the audit trail records what the
-- stages and operators do without each of them writing it by hand.
--
-- The actor: every process names itself in the session setting pp.actor
-- when it connects (pp_audit_set_actor: "sender:sender-1@host",
-- "operator:anna"); pp_audit_actor() reads it, with a fallback for a
-- session that did not set it.
--
-- Messages: a row trigger turns each updated message's transition worth
-- recording into audit rows (its WHEN clause passes nothing else):
--   sent, send_failed, sync_failed   the state reached
--   send_deferred    sending -> queued after an attempt (4xx, network,
--                    lease expired); a claim given back untried is not
--   flagged          the message waits for staff
--   delivered, delivery_failed, delivery_expired   a delivery report (SMS
--                    DLR); a DSN bounce is written by the fetcher itself,
--                    with what the bounce said ("bounced")
--   reset            flagged / failed / sync_failed back to the queue
--   send_now         an operator's "send now"
-- Incoming messages are inserted with their received / filed rows by the
-- fetcher and the sms stage, so no INSERT trigger is needed.
--
-- Restarts: the watchdog's check-in row counts an instance's restarts; a
-- higher count writes a "restarted" row.
--
-- Configuration: a row trigger on each settings table notes, for an
-- operator's session only, which tables it changed (pp.changed) and for
-- which practice and person; the CLI reads that after a command and writes
-- one "config_changed" (or "person_changed") row with the command line.
-- A rolled-back change leaves no note: the setting is transactional.

-- pp_audit_actor - this session's actor (pp.actor), else fallback.
CREATE FUNCTION pp_audit_actor(fallback text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('pp.actor', true), ''), fallback)
$$;

-- pp_audit_text - one line of at most 1000 characters, as pp_audit writes.
CREATE FUNCTION pp_audit_text(detail text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(regexp_replace(detail, '[[:cntrl:]]', ' ', 'g'), 1000)
$$;

-- The trigger functions run with the rights of the role that changed the
-- row (roles.sql): every role that updates messages or service_checkins
-- may insert into audit_log. The messages trigger is a row trigger whose
-- WHEN clause (evaluated without calling the function) passes only a
-- change worth recording: a claim (-> sending), a lease renewed or a row
-- touched costs nothing, and the one row of an outcome writes its rows.
CREATE FUNCTION pp_audit_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor, action, practice_id, message_id, person_id, detail)
    SELECT pp_audit_actor('db:' || coalesce(nullif(current_setting('application_name'), ''),
                                            session_user::text)),
           e.action, NEW.practice_id, NEW.id, NEW.person_id, pp_audit_text(CASE e.action
        WHEN 'sent' THEN concat_ws(' ', 'channel=' || NEW.channel, 'attempt=' || NEW.attempts,
                                   'code=' || NEW.last_code, 'reply=' || NEW.server_reply)
        WHEN 'send_deferred' THEN concat_ws(' ', 'channel=' || NEW.channel,
                                   'attempt=' || NEW.attempts, 'code=' || NEW.last_code,
                                   'retry_after=' || (to_json(NEW.deliver_after) #>> '{}'),
                                   'error=' || NEW.last_error)
        WHEN 'flagged' THEN 'reason=' || coalesce(NEW.hold_reason, NEW.last_error,
                                                  'attempts used up')
        WHEN 'reset' THEN concat_ws(' ', 'from=' || OLD.state,
                                    CASE WHEN OLD.flagged THEN 'flagged' END, 'to=' || NEW.state)
        WHEN 'send_now' THEN 'state=' || NEW.state
        ELSE CASE WHEN e.action LIKE 'deliver%'
             THEN concat_ws(' ', 'code=' || NEW.delivery_code,
                            'detail=' || nullif(NEW.delivery_detail, ''))
             ELSE concat_ws(' ', 'channel=' || NEW.channel, 'attempt=' || NEW.attempts,
                            'code=' || NEW.last_code, 'error=' || NEW.last_error) END END)
    FROM (VALUES
        (CASE WHEN NEW.state <> OLD.state THEN CASE NEW.state
             WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'send_failed'
             WHEN 'sync_failed' THEN 'sync_failed' END END),
        (CASE WHEN OLD.state = 'sending' AND NEW.state = 'queued'
                   AND NEW.attempts >= OLD.attempts
              THEN 'send_deferred' END),
        (CASE WHEN NEW.flagged AND NOT OLD.flagged THEN 'flagged' END),
        (CASE WHEN NEW.delivery IS DISTINCT FROM OLD.delivery AND NEW.delivery <> 'bounced' THEN
             CASE NEW.delivery WHEN 'delivered' THEN 'delivered'
                  ELSE 'delivery_' || NEW.delivery END END),
        (CASE WHEN (OLD.flagged AND NOT NEW.flagged)
                   OR (OLD.state IN ('failed', 'sync_failed')
                       AND NEW.state IN ('queued', 'pending_sync')) THEN 'reset' END),
        (CASE WHEN NEW.send_now AND NOT OLD.send_now THEN 'send_now' END)
    ) AS e(action)
    WHERE e.action IS NOT NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_audit AFTER UPDATE ON messages
    FOR EACH ROW
    WHEN ((NEW.state <> OLD.state AND NEW.state <> 'sending') OR NEW.flagged <> OLD.flagged
          OR NEW.send_now <> OLD.send_now OR NEW.delivery IS DISTINCT FROM OLD.delivery)
    EXECUTE FUNCTION pp_audit_messages();

-- Restarts, from the watchdog's check-ins.
CREATE FUNCTION pp_audit_restart() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor, action, detail)
    VALUES (pp_audit_actor('watchdog@' || NEW.host), 'restarted',
            pp_audit_text(format('stage=%s instance=%s host=%s pid=%s restart=%s',
                                 NEW.stage, NEW.instance, NEW.host, NEW.pid, NEW.restarts)));
    RETURN NULL;
END
$$;
CREATE TRIGGER service_checkins_audit AFTER UPDATE ON service_checkins
    FOR EACH ROW WHEN (NEW.restarts > OLD.restarts)
    EXECUTE FUNCTION pp_audit_restart();

-- pp_audit_note_change - remember in this session (pp.changed,
-- pp.changed_practice, pp.changed_person) what an operator changed.
CREATE FUNCTION pp_audit_note_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tables text := coalesce(current_setting('pp.changed', true), '');
    r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    practice text := CASE WHEN TG_TABLE_NAME = 'practices' THEN r ->> 'id'
                          ELSE r ->> 'practice_id' END;
    person text := CASE WHEN TG_TABLE_NAME = 'people' THEN r ->> 'id'
                        ELSE r ->> 'person_id' END;
BEGIN
    IF position(',' || TG_TABLE_NAME || ',' IN ',' || tables || ',') = 0 THEN
        PERFORM set_config('pp.changed', concat_ws(',', nullif(tables, ''), TG_TABLE_NAME),
                           false);
    END IF;
    IF practice IS NOT NULL
       AND coalesce(current_setting('pp.changed_practice', true), '') = '' THEN
        PERFORM set_config('pp.changed_practice', practice, false);
    END IF;
    IF person IS NOT NULL
       AND coalesce(current_setting('pp.changed_person', true), '') = '' THEN
        PERFORM set_config('pp.changed_person', person, false);
    END IF;
    RETURN NULL;
END
$$;

-- The settings tables, and the person tables an operator may change. The
-- condition is checked for each row without calling the function, so the
-- stages' own writes (rate state, tokens, read positions) cost nothing more.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['practices', 'send_windows', 'send_times', 'locations',
                             'email_accounts', 'sms_accounts', 'templates', 'tags',
                             'auto_messages', 'fetch_times', 'oauth_profiles', 'email_oauth',
                             'practice_holidays', 'sms_sessions', 'proxy_settings',
                             'installation', 'people', 'optouts', 'sms_optouts'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I '
                       'FOR EACH ROW WHEN (current_setting(''pp.actor'', true) '
                       'LIKE ''operator:%%'') EXECUTE FUNCTION pp_audit_note_change()',
                       t || '_audit_change', t);
    END LOOP;
END
$$;

-- The trail of one patient also takes the messages listing them (a
-- family's members): found by person.
CREATE INDEX message_people_person ON message_people (person_id);
