-- PracticePost schema step 004_automation: automatic messages (welcome,
-- confirmation, cancellation, reminders with family grouping), the
-- appointment and patient events that drive them, online-booking link sync
-- and recall / contact-list batches. The composer (composer_auto*.c,
-- composer_batch.c) does the work; these tables say what and record what
-- was done, so nothing is sent twice across restarts and instances.

-- Online-booking link sync, written by the practice software:
-- booking_link (v1) is the link once it is set; booking_link_error says
-- why setting it failed, booking_link_error_at when (stamped by trigger), so
-- an error older than a "reset failed messages" does not fail it again.
ALTER TABLE appointments
    ADD COLUMN booking_link_error text,
    ADD COLUMN booking_link_error_at timestamptz;

-- When a patient is due for recall (set by the practice software);
-- `practicepost recall --due-before DATE` selects on it.
ALTER TABLE people ADD COLUMN recall_due_at timestamptz;
CREATE INDEX people_recall_due ON people (practice_id, recall_due_at)
    WHERE recall_due_at IS NOT NULL;

-- Automatic messages of a practice, each with its templates and on/off.
--   welcome       a new patient row; sent delay_minutes later
--   confirmation  an appointment booked or moved; held delay_minutes
--                 (0-99) in the outbox, and replaced if it moves again
--   cancellation  an appointment cancelled; held delay_minutes
--   reminder      offset_minutes before the appointment (one rule per
--                 offset); family members' appointments on the same local
--                 day within family_window_minutes of each other share one
--                 message made from family_template_code
-- template_code is the email template, sms_template_code the one for
-- patients whose preferred channel is sms (NULL: they get the email).
CREATE TABLE auto_messages (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    kind            text NOT NULL
                    CHECK (kind IN ('welcome', 'confirmation', 'cancellation', 'reminder')),
    template_code   text NOT NULL,
    sms_template_code text,
    enabled         boolean NOT NULL DEFAULT true,
    offset_minutes  integer NOT NULL DEFAULT 0 CHECK (offset_minutes BETWEEN 0 AND 527040),
    delay_minutes   integer NOT NULL DEFAULT 10 CHECK (delay_minutes BETWEEN 0 AND 99),
    family_template_code text,
    family_sms_template_code text,
    family_window_minutes integer NOT NULL DEFAULT 60
                    CHECK (family_window_minutes BETWEEN 0 AND 1440),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT auto_messages_reminder_offset CHECK ((kind = 'reminder') = (offset_minutes > 0)),
    CONSTRAINT auto_messages_family_sms CHECK (family_sms_template_code IS NULL
                                               OR family_template_code IS NOT NULL),
    CONSTRAINT auto_messages_family_reminder CHECK (kind = 'reminder'
        OR (family_template_code IS NULL AND family_sms_template_code IS NULL)),
    FOREIGN KEY (practice_id, template_code) REFERENCES templates (practice_id, code)
        ON UPDATE CASCADE,
    FOREIGN KEY (practice_id, sms_template_code) REFERENCES templates (practice_id, code)
        ON UPDATE CASCADE,
    FOREIGN KEY (practice_id, family_template_code) REFERENCES templates (practice_id, code)
        ON UPDATE CASCADE,
    FOREIGN KEY (practice_id, family_sms_template_code) REFERENCES templates (practice_id, code)
        ON UPDATE CASCADE
);
CREATE UNIQUE INDEX auto_messages_one_per_kind ON auto_messages (practice_id, kind)
    WHERE kind <> 'reminder';
CREATE UNIQUE INDEX auto_messages_one_per_offset ON auto_messages (practice_id, offset_minutes)
    WHERE kind = 'reminder';

-- What happened to appointments, recorded by trigger for the composer.
-- Several unprocessed events of one appointment are handled together: the
-- last one decides (booked/moved: a confirmation; cancelled: a
-- cancellation).
CREATE TABLE appointment_events (
    id              bigserial PRIMARY KEY,
    appointment_id  bigint NOT NULL REFERENCES appointments ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('booked', 'moved', 'cancelled')),
    at              timestamptz NOT NULL DEFAULT now(),
    processed       boolean NOT NULL DEFAULT false,
    processed_at    timestamptz,
    outcome         text
);
CREATE INDEX appointment_events_todo ON appointment_events (id) WHERE NOT processed;
CREATE INDEX appointment_events_appointment ON appointment_events (appointment_id, id);

-- New patients, recorded by trigger (the welcome message).
CREATE TABLE patient_events (
    id              bigserial PRIMARY KEY,
    person_id       bigint NOT NULL REFERENCES people ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('created')),
    at              timestamptz NOT NULL DEFAULT now(),
    processed       boolean NOT NULL DEFAULT false,
    processed_at    timestamptz,
    outcome         text
);
CREATE INDEX patient_events_todo ON patient_events (id) WHERE NOT processed;

-- Every automatic message made (or refused: message_id NULL, error set),
-- one row per appointment it is about (a family reminder has one row per
-- member's appointment, all naming the same message). A reminder rule
-- reaches an appointment at most once: the unique index, taken in the
-- transaction that makes the message, holds across restarts and instances.
-- A superseded message is deleted with its rows; a message deleted by
-- hand leaves its rows (message_id NULL), so it is not made again.
CREATE TABLE auto_sent (
    id              bigserial PRIMARY KEY,
    auto_message_id bigint REFERENCES auto_messages ON DELETE SET NULL,
    kind            text NOT NULL
                    CHECK (kind IN ('welcome', 'confirmation', 'cancellation', 'reminder')),
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    person_id       bigint REFERENCES people ON DELETE CASCADE,
    appointment_id  bigint REFERENCES appointments ON DELETE CASCADE,
    message_id      bigint REFERENCES messages ON DELETE SET NULL,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX auto_sent_reminder_once ON auto_sent (auto_message_id, appointment_id)
    WHERE kind = 'reminder';
CREATE INDEX auto_sent_appointment ON auto_sent (appointment_id);
CREATE INDEX auto_sent_message ON auto_sent (message_id);

-- Messages waiting for their booking link (the composer looks every round).
CREATE INDEX messages_pending_sync ON messages (id) WHERE state = 'pending_sync';

-- Recall and contact-list batches: a list of patients (ids given by the
-- operator, or the patients whose recall is due) and one template; items
-- are composed in large transactions by the composer.
CREATE TABLE recall_batches (
    id              bigserial PRIMARY KEY,
    practice_id     bigint NOT NULL REFERENCES practices ON DELETE CASCADE,
    template_code   text NOT NULL,
    sms_template_code text,
    source          text NOT NULL DEFAULT '',
    category        text NOT NULL DEFAULT 'recall',
    total           integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE recall_items (
    id              bigserial PRIMARY KEY,
    batch_id        bigint NOT NULL REFERENCES recall_batches ON DELETE CASCADE,
    person_id       bigint NOT NULL REFERENCES people ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'done', 'failed')),
    message_id      bigint REFERENCES messages ON DELETE SET NULL,
    error           text,
    done_at         timestamptz,
    UNIQUE (batch_id, person_id)
);
CREATE INDEX recall_items_new ON recall_items (batch_id, id) WHERE state = 'new';

-- pp_appointment_booked - an appointment inserted as booked.
CREATE FUNCTION pp_appointment_booked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO appointment_events (appointment_id, kind) VALUES (NEW.id, 'booked');
    RETURN NULL;
END $$;
CREATE TRIGGER appointments_booked AFTER INSERT ON appointments
    FOR EACH ROW WHEN (NEW.status = 'booked') EXECUTE FUNCTION pp_appointment_booked();

-- pp_appointment_changed - a booked appointment moved (start, length or
-- place), cancelled, or booked again: record the event and raise
-- sequence (the iCalendar SEQUENCE), unless the writer raised it itself.
CREATE FUNCTION pp_appointment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev text;
BEGIN
    IF OLD.status = 'booked' AND NEW.status = 'cancelled' THEN
        ev := 'cancelled';
    ELSIF OLD.status = 'cancelled' AND NEW.status = 'booked' THEN
        ev := 'booked';
    ELSIF NEW.status = 'booked' AND (NEW.starts_at IS DISTINCT FROM OLD.starts_at
            OR NEW.duration_minutes IS DISTINCT FROM OLD.duration_minutes
            OR NEW.location_id IS DISTINCT FROM OLD.location_id) THEN
        ev := 'moved';
    END IF;
    IF ev IS NOT NULL THEN
        IF NEW.sequence <= OLD.sequence THEN
            NEW.sequence := OLD.sequence + 1;
        END IF;
        NEW.updated_at := now();
        INSERT INTO appointment_events (appointment_id, kind) VALUES (NEW.id, ev);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER appointments_changed BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION pp_appointment_changed();

-- pp_booking_link_error_stamp - when the booking-link error was written.
CREATE FUNCTION pp_booking_link_error_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.booking_link_error_at := CASE WHEN NEW.booking_link_error IS NULL THEN NULL
                                      ELSE clock_timestamp() END;
    RETURN NEW;
END $$;
CREATE TRIGGER appointments_link_error_insert BEFORE INSERT ON appointments
    FOR EACH ROW WHEN (NEW.booking_link_error IS NOT NULL)
    EXECUTE FUNCTION pp_booking_link_error_stamp();
CREATE TRIGGER appointments_link_error_update BEFORE UPDATE OF booking_link_error ON appointments
    FOR EACH ROW EXECUTE FUNCTION pp_booking_link_error_stamp();

-- pp_patient_created - a new patient (the welcome message).
CREATE FUNCTION pp_patient_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO patient_events (person_id, kind) VALUES (NEW.id, 'created');
    RETURN NULL;
END $$;
CREATE TRIGGER people_created AFTER INSERT ON people
    FOR EACH ROW WHEN (NEW.kind = 'patient') EXECUTE FUNCTION pp_patient_created();

-- A message waiting for its booking link is completed by replacing its row
-- under the same id inside one transaction; the compose request that made it
-- keeps pointing at it, so the reference is checked at commit.
ALTER TABLE compose_requests ALTER CONSTRAINT compose_requests_message_id_fkey
    DEFERRABLE INITIALLY DEFERRED;
