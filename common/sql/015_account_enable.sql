-- PracticePost schema step 015_account_enable: a new email account is
-- saved disabled and is enabled by its first passing credential test
-- (`practicepost account add-email` runs one through the service at once;
-- `practicepost account test` later). One rule, in the database, so the
-- test's outcome enables the account in the same statement that records
-- it, whoever records it:
--   first_test_passed_at  the first test that passed (NULL: never passed).
--                         When test_passed_at is first set, it is copied
--                         here and the account is enabled (its setup is
--                         complete). Later passes change nothing, so an
--                         account staff disabled stays disabled.
-- Accounts that passed a test before this step count as passed then.

ALTER TABLE email_accounts ADD COLUMN first_test_passed_at timestamptz;
UPDATE email_accounts SET first_test_passed_at = test_passed_at
    WHERE test_passed_at IS NOT NULL;

-- pp_account_first_pass - the trigger: enable on the first pass.
CREATE FUNCTION pp_account_first_pass() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.first_test_passed_at := NEW.test_passed_at;
    NEW.enabled := true;
    NEW.setup_incomplete := false;
    RETURN NEW;
END
$$;

CREATE TRIGGER email_accounts_first_pass
    BEFORE UPDATE OF test_passed_at ON email_accounts
    FOR EACH ROW
    WHEN (NEW.test_passed_at IS NOT NULL AND OLD.first_test_passed_at IS NULL
          AND NEW.first_test_passed_at IS NULL)
    EXECUTE FUNCTION pp_account_first_pass();
