-- PracticePost schema step 011_account_test: the credential test of an
-- email account (`practicepost account test`, run inside the service) and
-- the rule that an account is enabled only once a test has passed.
--   tested_at       the last test's end (NULL: never tested)
--   test_result     'passed', or 'failed at step N (name): what happened';
--                   never a password or token
--   test_passed_at  the last test that passed: `account enable` refuses an
--                   account that has none
--   setup_incomplete the account was saved with "allow setup without
--                   account details": disabled, nothing connects, servers
--                   and passwords may still be missing
-- Accounts that existed before this step keep working as they are (they
-- are enabled and were never tested).

ALTER TABLE email_accounts
    ADD COLUMN tested_at timestamptz,
    ADD COLUMN test_result text CHECK (test_result !~ '[\r\n]'),
    ADD COLUMN test_passed_at timestamptz,
    ADD COLUMN setup_incomplete boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT email_accounts_incomplete_disabled
        CHECK (NOT (setup_incomplete AND enabled));
