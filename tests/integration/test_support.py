"""The support bundle against a real PostgreSQL and SMTP sink: `support
bundle` writes every section, keeps out every kind of secret (account
passwords, an SMS password, OAuth2 tokens, the key file, the conninfo
password) and patient contact details in free texts; `support send` queues
one email through the practice's own account and the real sender delivers
it to the support address with the bundle attached.
"""

import email
import email.policy
import os
import re
import stat
import time

from conftest import pp_bin, run, write_config
from test_sender import encrypt_secret, make_practice, send_once

SMTP_PASSWORD = "Smtp-Pw-4471-quartz"
IMAP_PASSWORD = "Imap-Pw-9902-basalt"
SMS_PASSWORD = "Sms-Pw-3318-granite"
REFRESH_TOKEN = "1//refresh-token-0aZ9-obsidian"
ACCESS_TOKEN = "ya29.access-token-feldspar"
CONN_PASSWORD = "Conn-Pw-5520-marble"
SUPPORT = "help@vendor.example"

SECTIONS = ("== Versions ==", "== Configuration (secrets removed) ==", "== Status ==",
            "== Stage check-ins ==", "== Open diagnostics ==",
            "== Self-test failures (last 7 days) ==", "== Paused accounts ==",
            "== Email accounts (no secrets: only whether one is set) ==",
            "== OAuth2 sign-ins (no tokens) ==", "== Queue counts ==",
            "== Recent configuration changes (audit trail) ==")


def cli(conf, *args, input=None, check=True):
    return run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args], input=input,
               check=check)


def support_config(db, pp_tmp, **extra):
    sections = {"support": {"address": SUPPORT}, "sender": {"poll_interval_ms": "100"},
                "fetcher": {"api_token": "cfg-token-7781"}}
    sections.update(extra)
    return write_config(os.path.join(pp_tmp, "pp.conf"),
                        db.conninfo + " password=" + CONN_PASSWORD, sections)


def seed_secrets(db, conf, smtp_port=25):
    """Every kind of secret the installation holds; returns (practice, account)."""
    practice = make_practice(db)
    r = cli(conf, "account", "add-email", "--practice", practice, "--name", "main",
            "--from", "reception@smile.example", "--from-name", "Smile Dental",
            "--smtp-host", "127.0.0.1", "--smtp-port", smtp_port, "--smtp-tls", "none",
            "--password-file", "-", "--in-protocol", "imap", "--in-host",
            "imap.example.com", "--in-password-file", "-",
            input=SMTP_PASSWORD + "\n" + IMAP_PASSWORD + "\n", check=False)
    assert r.returncode == 1 and "was saved disabled" in r.stderr, r.stderr
    acct = int(r.stdout)
    # The sink takes no login: the account sends without AUTH. No watchdog
    # runs here to test the account: a passed test is recorded directly,
    # which enables it (015_account_enable.sql).
    db.sql("UPDATE email_accounts SET smtp_auth = false, tested_at = now(), test_result = "
           "'passed', test_passed_at = now() WHERE id = %s", (acct,))
    sms = int(cli(conf, "account", "add-sms", "--practice", practice, "--name", "kannel",
                  "--url", "http://127.0.0.1:13013/cgi-bin/sendsms", "--user", "tester",
                  "--password-file", "-", input=SMS_PASSWORD + "\n").stdout)
    # A URL written by hand with credentials in it (the CLI refuses those).
    db.sql("UPDATE sms_accounts SET url = 'http://gw:pw-in-url@127.0.0.1:13013/cgi-bin/"
           "sendsms?password=QueryPw-6610' WHERE id = %s", (sms,))
    oauth = db.sql("INSERT INTO email_accounts (practice_id, name, from_address, auth_kind) "
                   "VALUES (%s, 'cloud', 'cloud@smile.example', 'oauth2') RETURNING id",
                   (practice,))[0][0]
    db.sql("INSERT INTO email_oauth (account_id, provider, client_id, client_secret, token_url, "
           "access_secret, refresh_secret) VALUES (%s, 'generic', 'client-1', %s, "
           "'https://login.example/token', %s, %s)",
           (oauth, encrypt_secret(conf, "client-secret-pumice"),
            encrypt_secret(conf, ACCESS_TOKEN), encrypt_secret(conf, REFRESH_TOKEN)))
    return practice, acct


def forbidden(db, conf):
    """Every secret, in plain and stored form, and the key file's text."""
    with open(os.path.join(os.path.dirname(conf), "secret.key")) as f:
        key = f.read().strip()
    stored = [v for row in db.sql(
        "SELECT smtp_secret, in_secret FROM email_accounts UNION ALL SELECT secret, NULL "
        "FROM sms_accounts UNION ALL SELECT access_secret, refresh_secret FROM email_oauth "
        "UNION ALL SELECT client_secret, NULL FROM email_oauth") for v in row if v]
    assert len(stored) == 6, stored
    return [SMTP_PASSWORD, IMAP_PASSWORD, SMS_PASSWORD, REFRESH_TOKEN, ACCESS_TOKEN,
            CONN_PASSWORD, "client-secret-pumice", "QueryPw-6610", "pw-in-url",
            "cfg-token-7781", key] + stored


def test_bundle_has_the_sections_and_no_secret(db, pp_tmp):
    conf = support_config(db, pp_tmp)
    practice, acct = seed_secrets(db, conf)
    db.sql("UPDATE email_accounts SET paused_at = now(), paused_reason = 'login refused' "
           "WHERE id = %s", (acct,))
    db.sql("INSERT INTO diagnostics (stage, severity, practice_id, code, text) VALUES "
           "('composer', 'warning', %s, 'auto_message_refused', 'reminder refused: address "
           "anna.meyer@patients.example bounced, mobile +491511234567')", (practice,))
    db.sql("INSERT INTO self_tests (stage, instance, check_name, ok, detail) VALUES "
           "('sender', 'sender-1', 'smtp_connect', false, 'connection refused')")
    cli(conf, "holiday", "add", "--practice", practice, "--date", "2031-12-25")
    out = os.path.join(pp_tmp, "bundle.txt")
    r = cli(conf, "support", "bundle", "--output", out)
    assert "support bundle written to %s" % out in r.stdout
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    with open(out) as f:
        text = f.read()

    for section in SECTIONS:
        assert section in text, section
    assert re.search(r"schema: database (\d+), this build \1\b", text), text
    assert "libcurl: libcurl/" in text and "postgresql server: PostgreSQL 15" in text
    # The configuration: settings kept, secrets removed, conninfo without password.
    assert "address = %s" % SUPPORT in text and "poll_interval_ms = 100" in text
    assert "api_token = (removed)" in text and "password=(removed)" in text
    assert "dbname=" in text and "key_file = " in text
    # State: the paused account, the diagnostic (masked), the self-test, the audit.
    assert "login refused" in text and "auto_message_refused" in text
    assert "<address>" in text and "<number>" in text
    assert "anna.meyer@patients.example" not in text and "1511234567" not in text
    assert "smtp_connect" in text and "connection refused" in text
    assert "holiday" in text and "config_changed" in text
    assert "smtp_password_set=t" in text and "signed_in=t" in text
    assert "url=http://127.0.0.1:13013/cgi-bin/sendsms " in text
    for secret in forbidden(db, conf):
        assert secret not in text, secret

    # Standard output gives the same sections.
    piped = cli(conf, "support", "bundle").stdout
    assert all(s in piped for s in SECTIONS) and CONN_PASSWORD not in piped


def test_bundle_refuses_bad_options(db, pp_tmp):
    conf = support_config(db, pp_tmp)
    r = cli(conf, "support", "bundle", "extra", check=False)
    assert r.returncode == 2 and 'unexpected argument "extra"' in r.stderr
    r = cli(conf, "support", "send", check=False)
    assert r.returncode == 2 and "--practice is required" in r.stderr
    bare = write_config(os.path.join(pp_tmp, "bare.conf"), db)
    practice = make_practice(db)
    r = cli(bare, "support", "send", "--practice", practice, check=False)
    assert r.returncode == 2 and "no support address" in r.stderr
    r = cli(bare, "support", "send", "--practice", practice, "--to", SUPPORT, check=False)
    assert r.returncode == 1 and "has no email account" in r.stderr


def test_send_reaches_the_sink_through_the_practice_account(db, pp_tmp, smtp_sink):
    conf = support_config(db, pp_tmp)
    practice, acct = seed_secrets(db, conf, smtp_port=smtp_sink.port)
    msg_id = int(cli(conf, "support", "send", "--practice", practice).stdout)
    row = db.sql("SELECT state::text, send_now, category, email_account_id, to_addr, "
                 "person_id FROM messages WHERE id = %s", (msg_id,))[0]
    assert row == ("queued", True, "support", acct, SUPPORT, None)
    audit = db.sql("SELECT actor, detail FROM audit_log WHERE action = 'support_sent' AND "
                   "message_id = %s", (msg_id,))
    assert len(audit) == 1 and ("to=%s account=%d" % (SUPPORT, acct)) in audit[0][1]

    send_once(conf)
    got = smtp_sink.wait_for(1)
    time.sleep(0.2)
    assert smtp_sink.count() == 1
    assert got[0]["rcpt_tos"] == [SUPPORT] and got[0]["mail_from"] == "reception@smile.example"
    msg = email.message_from_bytes(got[0]["data"], policy=email.policy.default)
    assert msg["To"] == SUPPORT and "support bundle" in msg["Subject"]
    files = [p for p in msg.iter_attachments()]
    assert len(files) == 1 and files[0].get_filename().startswith(
        "practicepost-support-%d-" % practice)
    bundle = files[0].get_content()
    for section in SECTIONS:
        assert section in bundle, section
    raw = got[0]["data"].decode("ascii")
    for secret in forbidden(db, conf):
        assert secret not in bundle and secret not in raw, secret
    assert db.sql("SELECT state::text FROM messages WHERE id = %s", (msg_id,))[0][0] == "sent"

    # --account names another practice's account: refused, nothing queued.
    other = make_practice(db, name="Other Dental")
    r = cli(conf, "support", "send", "--practice", other, "--account", acct, check=False)
    assert r.returncode == 1 and "has no email account %d" % acct in r.stderr
    assert db.sql("SELECT count(*) FROM messages WHERE category = 'support'")[0][0] == 1
