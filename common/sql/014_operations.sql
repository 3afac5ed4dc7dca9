-- PracticePost schema step 014_operations: what the stages' timed
-- self-tests write themselves (pp_selftest.c). stage_probes is the row each
-- instance writes to prove the database takes writes (and reads its
-- clock); selftest_logs keeps the log lines that led up to a check
-- starting to fail, so the diagnostic outlives a rotated journal.
CREATE TABLE stage_probes (
    host        text NOT NULL,
    instance    text NOT NULL,
    stage       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, instance)
);

CREATE TABLE selftest_logs (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    host        text NOT NULL,
    stage       text NOT NULL,
    instance    text NOT NULL,
    check_name  text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    lines       text NOT NULL DEFAULT ''
);
CREATE INDEX selftest_logs_at ON selftest_logs (at);
CREATE INDEX self_tests_instance ON self_tests (instance, check_name, id);

-- One service may serve every practice database on a server ([databases]
-- discover = yes). A database whose name says demo, training, test, trial
-- or backup is skipped unless it is marked genuine here
-- (`practicepost --database NAME db genuine yes`).
CREATE TABLE installation (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    genuine     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;

-- When the last attempt of an outgoing message began (the SMTP transaction
-- or the SMS request), beside sent_at (when the server accepted it): the
-- spacing of paced sends shows here.
ALTER TABLE messages ADD COLUMN attempted_at timestamptz;
