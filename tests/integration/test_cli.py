"""The operator CLI `practicepost` against a real PostgreSQL.

Each test gets a fresh migrated database and a config file; commands run as
subprocesses and the tests check their exit status, their output and what
the database holds afterwards.  The watchdog's control socket is played by
a ZeroMQ ROUTER in the test (to see the exact frames the CLI sends), and by
the real practicepost-watchdog where that binary is built.
"""

import base64
import json
import os
import subprocess
import time

import msgpack
import pytest
import zmq

from conftest import BIN_DIR, Daemon, pp_bin, run

PASSWORD = "Tr0ub4dor&3-correct-horse"
IN_PASSWORD = "imap-Pa55word!"


# --------------------------------------------------------------------------
# helpers


@pytest.fixture
def conf(db, pp_tmp):
    return db.config(os.path.join(pp_tmp, "pp.conf"))


def cli(conf, *args, input=None, check=True, timeout=60):
    return run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args],
               input=input, check=check, timeout=timeout)


def cli_json(conf, *args):
    return json.loads(cli(conf, "--json", *args).stdout)


def fails(conf, *args, rc=1, input=None):
    """Run a command that must fail with exit status rc; returns its stderr."""
    r = cli(conf, *args, input=input, check=False)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("practicepost"), r.stderr
    return r.stderr


def add_email(conf, *args, input=None):
    """`account add-email` where no service runs: the account is saved
    disabled and its credential test cannot run (exit 1); its id."""
    r = cli(conf, "account", "add-email", *args, input=input, check=False)
    assert r.returncode == 1 and "was saved disabled" in r.stderr, (r.stdout, r.stderr)
    return int(r.stdout)


def pass_test(db, account):
    """No service runs in these tests to test an account: record a passed
    credential test directly (015_account_enable.sql then enables it)."""
    db.sql("UPDATE email_accounts SET tested_at = now(), test_result = 'passed', "
           "test_passed_at = now() WHERE id = %s", (account,))


def one(db, query, params=None):
    rows = db.sql(query, params)
    assert len(rows) == 1, rows
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def key_of(conf):
    key_file = os.path.join(os.path.dirname(conf), "secret.key")
    with open(key_file) as f:
        return bytes.fromhex(f.read().strip())


def decrypt(conf, stored):
    """Open a pp_secret stored form when python3-cryptography is there."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    raw = base64.b64decode(stored[3:])
    return AESGCM(key_of(conf)).decrypt(raw[:12], raw[12:], None).decode()


def add_practice(conf, name="North Dental", site="North"):
    return int(cli(conf, "practice", "add", "--name", name, "--site", site,
                   "--time-zone", "Europe/London", "--mail-domain", "north.example").stdout)


class World:
    """A practice with an email and an SMS account, a family of two
    patients, a provider, templates and an appointment."""

    def __init__(self, db, conf):
        self.db, self.conf = db, conf
        self.practice = add_practice(conf)
        self.email_account = add_email(
            conf, "--practice", self.practice, "--name", "main",
            "--from", "reception@north.example", "--smtp-host", "127.0.0.1",
            "--smtp-tls", "none", "--no-auth")
        pass_test(db, self.email_account)
        self.sms_account = int(cli(
            conf, "account", "add-sms", "--practice", self.practice, "--name", "kannel",
            "--url", "http://127.0.0.1:13013/cgi-bin/sendsms", "--user", "tester").stdout)
        self.anna = int(cli(conf, "person", "add", "--practice", self.practice, "--first",
                            "Anna", "--last", "Meyer", "--email", "anna@example.org",
                            "--mobile", "+447700900123", "--family", "7").stdout)
        self.ben = int(cli(conf, "person", "add", "--practice", self.practice, "--first",
                           "Ben", "--last", "Meyer", "--family", "7", "--prefer", "sms",
                           "--mobile", "+447700900124").stdout)
        self.doctor = int(cli(conf, "person", "add", "--practice", self.practice, "--kind",
                              "provider", "--title", "Dr", "--first", "Jo", "--last",
                              "Smith").stdout)
        cli(conf, "template", "add", "--practice", self.practice, "--code", "reminder",
            "--subject", "Your visit on {{appointment.date}}",
            "--body", "Dear {{patient.first_name}}, see you at {{appointment.time}}.")
        cli(conf, "template", "add", "--practice", self.practice, "--code", "hello",
            "--subject", "Hello from {{practice.name}}",
            "--body", "Dear {{patient.first_name}}, welcome.")
        self.appointment = one(db, "INSERT INTO appointments (practice_id, patient_id, "
                               "provider_id, starts_at) VALUES (%s, %s, %s, "
                               "now() + interval '1 day') RETURNING id",
                               (self.practice, self.anna, self.doctor))

    def message(self, state="queued", channel="email", **cols):
        values = {"practice_id": self.practice, "direction": "out", "channel": channel,
                  "state": state, "person_id": self.anna,
                  "from_addr": "reception@north.example", "to_addr": "anna@example.org",
                  "subject": "Reminder", "body": "Subject: Reminder\r\n\r\nsecret body"}
        if channel == "email":
            values["email_account_id"] = self.email_account
        else:
            values["sms_account_id"] = self.sms_account
        if state == "received":
            values["direction"] = "in"
            values.pop("email_account_id", None)
            values.pop("sms_account_id", None)
        values.update(cols)
        names = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        return one(self.db, "INSERT INTO messages (%s) VALUES (%s) RETURNING id"
                   % (names, marks), tuple(values.values()))


@pytest.fixture
def world(db, conf):
    return World(db, conf)


class FakeWatchdog:
    """A ROUTER bound to the config's control endpoint, as the watchdog binds it."""

    def __init__(self, conf):
        run_dir = os.path.join(os.path.dirname(conf), "run")
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("ipc://%s/control.sock" % run_dir)

    def recv(self, timeout=5.0):
        assert self.sock.poll(int(timeout * 1000)), "nothing reached the control socket"
        ident, frame = self.sock.recv_multipart()
        msg = msgpack.unpackb(frame, raw=False)
        assert set(msg) == {"v", "type", "ts", "from", "body"}
        return ident, msg

    def reply(self, ident, ok, text):
        body = {"v": 1, "type": "reply", "ts": int(time.time() * 1000), "from": "watchdog",
                "body": {"ok": ok, "text": text}}
        self.sock.send_multipart([ident, msgpack.packb(body)])

    def close(self):
        self.ctx.destroy(linger=0)


@pytest.fixture
def fake_watchdog(conf):
    wd = FakeWatchdog(conf)
    yield wd
    wd.close()


def cli_background(conf, *args):
    return subprocess.Popen([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --------------------------------------------------------------------------
# general


def test_help_and_unknown_commands(conf):
    r = cli(conf, "help")
    for command in ("practice add", "account add-email", "compose", "outbox", "status",
                    "restart", "reset-failed", "send-now", "diagnostics"):
        assert command in r.stdout
    assert "unknown command \"frobnicate\"" in fails(conf, "frobnicate", rc=2)
    assert "needs a subcommand" in fails(conf, "practice", rc=2)
    r = cli(conf, "practice", "add", "--help")
    assert r.stdout.startswith("usage: practicepost practice add --name N")


# --------------------------------------------------------------------------
# practices


def test_practice_add_and_list(db, conf):
    pid = add_practice(conf)
    assert one(db, "SELECT time_zone FROM practices WHERE id = %s", (pid,)) == "Europe/London"
    table = cli(conf, "practice", "list").stdout
    assert "North Dental" in table and "Europe/London" in table
    rows = cli_json(conf, "practice", "list")
    assert rows == [{**rows[0], "id": pid, "name": "North Dental", "site": "North",
                     "time_zone": "Europe/London", "mail_domain": "north.example",
                     "email_accounts": 0, "sms_accounts": 0, "send_immediately": True}]
    assert cli_json(conf, "practice", "add", "--name", "South", "--time-zone", "UTC",
                    "--mail-domain", "south.example") == {"id": pid + 1}


def test_practice_bad_time_zone_is_named(db, conf):
    err = fails(conf, "practice", "add", "--name", "Mars", "--time-zone", "Mars/Olympus",
                "--mail-domain", "mars.example")
    assert 'unknown time zone "Mars/Olympus"' in err
    assert "violates" not in err
    assert one(db, "SELECT count(*) FROM practices") == 0


def test_practice_missing_option_and_duplicate(db, conf):
    err = fails(conf, "practice", "add", "--name", "X", "--time-zone", "UTC", rc=2)
    assert "--mail-domain is required" in err and "usage: practicepost practice add" in err
    err = fails(conf, "practice", "add", "--name", "X", "--bogus", rc=2)
    assert "unrecognized option '--bogus'" in err
    add_practice(conf)
    err = fails(conf, "practice", "add", "--name", "North Dental", "--site", "North",
                "--time-zone", "UTC", "--mail-domain", "n.example")
    assert "already exists" in err
    assert one(db, "SELECT count(*) FROM practices") == 1


def test_json_strings_are_escaped(db, conf):
    name = 'Quote " back\\slash \t tab \n newline \x01 ctl \u00e9\u4e2d \U0001f9b7'
    db.sql("INSERT INTO practices (name, time_zone, mail_domain) VALUES (%s, 'UTC', 'x.example')",
           (name,))
    assert cli_json(conf, "practice", "list")[0]["name"] == name
    table = cli(conf, "practice", "list").stdout
    assert "\x01" not in table and "\t" not in table


# --------------------------------------------------------------------------
# accounts


def test_account_add_email_secrets_from_stdin(db, conf):
    pid = add_practice(conf)
    acct = add_email(conf, "--practice", pid, "--name", "main",
                     "--from", "reception@north.example", "--from-name", "North Dental",
                     "--smtp-host", "smtp.example.com", "--password-file", "-",
                     "--in-protocol", "imap", "--in-host", "imap.example.com",
                     "--in-password-file", "-", "--per-minute", "20", "--daily-cap", "500",
                     input=PASSWORD + "\n" + IN_PASSWORD + "\n")
    assert one(db, "SELECT enabled FROM email_accounts WHERE id = %s", (acct,)) is False
    row = one(db, "SELECT smtp_port, smtp_tls, smtp_auth, smtp_username, smtp_secret, in_port, "
              "in_tls, in_username, in_secret, per_minute, daily_cap FROM email_accounts "
              "WHERE id = %s", (acct,))
    (port, tls, auth, user, secret, in_port, in_tls, in_user, in_secret, rate, cap) = row
    assert (port, tls, auth, user) == (587, "starttls", True, "reception@north.example")
    assert (in_port, in_tls, in_user, rate, cap) == (993, "implicit", "reception@north.example",
                                                     20, 500)
    for stored, plain in ((secret, PASSWORD), (in_secret, IN_PASSWORD)):
        assert stored.startswith("v1:") and plain not in stored
        assert decrypt(conf, stored) in (None, plain)
    assert secret != in_secret
    dump = db.sql("SELECT email_accounts::text FROM email_accounts")[0][0]
    assert PASSWORD not in dump and IN_PASSWORD not in dump

    listing = cli(conf, "account", "list").stdout + cli(conf, "--json", "account", "list").stdout
    assert "smtp.example.com:587" in listing
    assert PASSWORD not in listing and IN_PASSWORD not in listing and secret not in listing
    entry = cli_json(conf, "account", "list")[0]
    assert entry["has_secret"] is True and entry["paused_at"] is None
    assert not any("secret" in k and not k.endswith("has_secret") for k in entry)


def test_account_add_email_defaults_and_password_file(db, conf, pp_tmp):
    pid = add_practice(conf)
    pw = os.path.join(pp_tmp, "pw")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw, 0o600)
    ids = {}
    for mode in ("implicit", "starttls", "starttls_optional", "none"):
        ids[mode] = add_email(conf, "--practice", pid, "--name", mode,
                              "--from", "r-%s@north.example" % mode, "--smtp-host", "h.example",
                              "--smtp-tls", mode, "--password-file", pw)
    ports = dict(db.sql("SELECT smtp_tls::text, smtp_port FROM email_accounts"))
    assert ports == {"implicit": 465, "starttls": 587, "starttls_optional": 25, "none": 25}
    assert decrypt(conf, one(db, "SELECT smtp_secret FROM email_accounts WHERE id = %s",
                             (ids["implicit"],))) in (None, PASSWORD)
    noauth = add_email(conf, "--practice", pid, "--name", "open",
                       "--from", "o@north.example", "--smtp-host", "h.example", "--no-auth")
    assert one(db, "SELECT smtp_auth, smtp_secret FROM email_accounts WHERE id = %s",
               (noauth,)) == (False, None)


def test_account_errors_name_the_problem(db, conf):
    pid = add_practice(conf)
    base = ["account", "add-email", "--practice", pid, "--name", "m", "--from",
            "r@north.example", "--smtp-host", "h.example"]
    assert "--password-file is required" in fails(conf, *base, rc=2)
    for inline in ("--password=" + PASSWORD, "--in-pass=" + PASSWORD):
        err = fails(conf, *base, inline, rc=2)
        assert "never taken from the command line" in err and PASSWORD not in err
    err = fails(conf, *base, "--password-file", PASSWORD)
    assert "cannot open the secret file" in err and PASSWORD not in err
    assert "no secret given on standard input" in fails(conf, *base, "--password-file", "-",
                                                        input="")
    assert "--smtp-tls: \"tls\" is not one of" in fails(conf, *base, "--no-auth",
                                                       "--smtp-tls", "tls", rc=2)
    assert "need --in-protocol" in fails(conf, *base, "--no-auth", "--in-host", "i", rc=2)
    assert "not a plain address" in fails(conf, "account", "add-email", "--practice", pid,
                                          "--name", "m", "--from", "Bob <b@x>",
                                          "--smtp-host", "h", "--no-auth", rc=2)
    err = fails(conf, "account", "add-email", "--practice", 999, "--name", "m", "--from",
                "r@north.example", "--smtp-host", "h.example", "--no-auth")
    assert "no practice with id 999" in err
    err = fails(conf, "account", "add-sms", "--practice", pid, "--name", "k", "--url",
                "http://k.example/sendsms?username=u&password=" + PASSWORD, rc=2)
    assert "must not carry credentials" in err and PASSWORD not in err
    assert one(db, "SELECT (SELECT count(*) FROM email_accounts) + "
               "(SELECT count(*) FROM sms_accounts)") == 0


def test_account_add_sms_secret_from_stdin(db, conf):
    pid = add_practice(conf)
    acct = int(cli(conf, "account", "add-sms", "--practice", pid, "--name", "kannel",
                   "--url", "http://127.0.0.1:13013/cgi-bin/sendsms", "--user", "tester",
                   "--password-file", "-", "--sender-id", "North", "--per-minute", "30",
                   input=PASSWORD + "\n").stdout)
    stored, rate = one(db, "SELECT secret, per_minute FROM sms_accounts WHERE id = %s", (acct,))
    assert stored.startswith("v1:") and PASSWORD not in stored and rate == 30
    assert decrypt(conf, stored) in (None, PASSWORD)
    rows = cli_json(conf, "account", "list", "--practice", pid)
    assert [(r["type"], r["id"], r["username"]) for r in rows] == [("sms", acct, "tester")]
    assert PASSWORD not in cli(conf, "account", "list").stdout


def test_account_resume_clears_pause_and_diagnostics(db, conf, world):
    db.sql("UPDATE email_accounts SET paused_at = now(), paused_reason = "
           "'535 authentication rejected' WHERE id = %s", (world.email_account,))
    db.sql("INSERT INTO diagnostics (stage, severity, practice_id, email_account_id, code, text) "
           "VALUES ('sender', 'error', %s, %s, 'smtp_auth', 'login refused'), "
           "('fetcher', 'error', %s, NULL, 'other', 'not this account')",
           (world.practice, world.email_account, world.practice))
    assert "535 authentication rejected" in cli(conf, "account", "list").stdout
    r = cli(conf, "account", "resume", world.email_account)
    assert "resumed" in r.stdout and "1 diagnostic(s) resolved" in r.stdout
    assert one(db, "SELECT paused_at IS NULL AND paused_reason IS NULL FROM email_accounts "
               "WHERE id = %s", (world.email_account,)) is True
    assert db.sql("SELECT code FROM diagnostics WHERE resolved_at IS NULL") == [("other",)]
    assert "no email account with id 999" in fails(conf, "account", "resume", 999)
    assert "was not paused" in cli(conf, "account", "resume", "--sms", world.sms_account).stdout


# --------------------------------------------------------------------------
# people and templates


def test_person_add_set_list(db, conf, world):
    rows = cli_json(conf, "person", "list", "--practice", world.practice)
    by_id = {r["id"]: r for r in rows}
    assert by_id[world.anna]["email"] == "anna@example.org"
    assert by_id[world.ben]["preferred_channel"] == "sms"
    assert by_id[world.doctor]["kind"] == "provider"
    assert by_id[world.anna]["family_id"] == by_id[world.ben]["family_id"] == 7
    cli(conf, "person", "set", world.ben, "--email", "ben@example.org", "--mobile", "")
    assert one(db, "SELECT email, mobile FROM people WHERE id = %s",
               (world.ben,)) == ("ben@example.org", None)
    add = ["person", "add", "--practice", world.practice, "--first", "A", "--last", "B"]
    assert "--email must be one line" in fails(conf, *add, "--email", "a@b\r\nBcc: x@y", rc=2)
    assert "not a plain address" in fails(conf, *add, "--email", "A <a@b.example>", rc=2)
    assert '--kind: "dentist" is not one of' in fails(conf, *add, "--kind", "dentist", rc=2)
    assert "no practice with id 4242" in fails(conf, "person", "list", "--practice", 4242)
    assert "no person with id 4242" in fails(conf, "person", "set", 4242, "--title", "Dr")


def test_template_upsert_and_unknown_field(db, conf, world):
    before = one(db, "SELECT id FROM templates WHERE code = 'hello'")
    r = cli(conf, "template", "add", "--practice", world.practice, "--code", "hello",
            "--format", "html", "--subject", "Hi {{patient.first_name}}", "--body-file", "-",
            input="<p>Dear {{patient.first_name}}</p>\n")
    assert int(r.stdout) == before and "updated" in r.stderr
    assert one(db, "SELECT format, body FROM templates WHERE id = %s",
               (before,)) == ("html", "<p>Dear {{patient.first_name}}</p>\n")
    err = fails(conf, "template", "add", "--practice", world.practice, "--code", "shoe",
                "--body", "Your size: {{patient.shoe_size}}")
    assert "{{patient.shoe_size}}" in err
    assert one(db, "SELECT count(*) FROM templates WHERE code = 'shoe'") == 0
    assert "exactly one of --body" in fails(conf, "template", "add", "--practice",
                                            world.practice, "--code", "x", rc=2)
    sms = int(cli(conf, "template", "add", "--practice", world.practice, "--code", "sms1",
                  "--channel", "sms", "--body", "Hi {{patient.first_name}}").stdout)
    rows = cli_json(conf, "template", "list", "--practice", world.practice)
    assert [(t["code"], t["channel"]) for t in rows] == [("hello", "email"),
                                                        ("reminder", "email"), ("sms1", "sms")]
    assert rows[2]["id"] == sms and "body" not in rows[2]
    assert "{{patient.first_name}}" in cli(conf, "fields").stdout


# --------------------------------------------------------------------------
# compose and enqueue


def test_compose_inserts_a_request_and_wakes_the_composer(db, conf, world, fake_watchdog):
    r = cli(conf, "compose", "--template", "reminder", "--patient", world.anna,
            "--appointment", world.appointment, "--send-now")
    req = int(r.stdout)
    row = one(db, "SELECT practice_id, template_code, channel, person_id, appointment_id, "
              "draft, send_now, state FROM compose_requests WHERE id = %s", (req,))
    assert row == (world.practice, "reminder", None, world.anna, world.appointment, False,
                   True, "new")
    ident, msg = fake_watchdog.recv()
    assert ident.startswith(b"ctl-") and msg["type"] == "wake"
    assert msg["body"] == {"stage": "composer", "message_id": 0}


def test_compose_refuses_what_cannot_be_composed(db, conf, world):
    base = ["compose", "--patient", world.anna]
    assert 'no template "nope"' in fails(conf, *base, "--template", "nope")
    assert "--template is required" in fails(conf, *base, rc=2)
    assert "contradict" in fails(conf, *base, "--template", "hello", "--draft", "--send-now",
                                 rc=2)
    other = add_practice(conf, "South", "South")
    assert "belongs to practice %d, not %d" % (world.practice, other) in fails(
        conf, *base, "--template", "hello", "--practice", other)
    assert "is a provider, not a patient" in fails(conf, "compose", "--template", "hello",
                                                   "--patient", world.doctor)
    assert "no appointment with id 999" in fails(conf, *base, "--template", "hello",
                                                 "--appointment", 999)
    db.sql("UPDATE people SET email = NULL WHERE id = %s", (world.ben,))
    assert "patient %d has no email address" % world.ben in fails(
        conf, "compose", "--template", "hello", "--patient", world.ben)
    assert one(db, "SELECT count(*) FROM compose_requests") == 0


def test_enqueue_free_text_email_and_sms(db, conf, world):
    req = int(cli(conf, "enqueue", "email", "--patient", world.anna, "--subject", "Your x-ray",
                  "--body-file", "-", "--category", "clinical", "--signature", "--draft",
                  input="Dear Anna,\nall is well.\n").stdout)
    assert one(db, "SELECT template_code, channel, subject, body, category, add_signature, "
               "draft FROM compose_requests WHERE id = %s", (req,)) == (
        None, "email", "Your x-ray", "Dear Anna,\nall is well.\n", "clinical", True, True)
    got = cli_json(conf, "enqueue", "sms", "--patient", world.ben, "--text", "See you soon")
    assert got == {"request_id": got["request_id"], "state": "new", "message_id": None,
                   "error": None}
    assert one(db, "SELECT channel, subject, body FROM compose_requests WHERE id = %s",
               (got["request_id"],)) == ("sms", None, "See you soon")
    assert "--subject is required" in fails(conf, "enqueue", "email", "--patient", world.anna,
                                            "--body", "x", rc=2)
    assert "one line" in fails(conf, "enqueue", "email", "--patient", world.anna, "--subject",
                               "a\r\nBcc: evil@example.com", "--body", "x", rc=2)


@pytest.mark.skipif(not os.access(os.path.join(BIN_DIR, "practicepost-composer"), os.X_OK),
                    reason="practicepost-composer is not built")
def test_compose_wait_reports_the_message_or_the_error(db, conf, world):
    composer = Daemon("composer", db.config(conf, composer={"poll_interval_ms": "100"}))
    r = cli(conf, "compose", "--template", "reminder", "--patient", world.anna,
            "--appointment", world.appointment, "--wait", "20", timeout=30)
    req, msg = [int(x) for x in r.stdout.split()]
    assert one(db, "SELECT message_id FROM compose_requests WHERE id = %s", (req,)) == msg
    subject, to = one(db, "SELECT subject, to_addr FROM messages WHERE id = %s", (msg,))
    assert subject.startswith("Your visit on ") and "{{" not in subject
    assert to == "anna@example.org"
    # The reminder needs an appointment: the composer refuses it, --wait says why.
    r = cli(conf, "--json", "compose", "--template", "reminder", "--patient", world.anna,
            "--wait", "20", check=False, timeout=30)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["state"] == "failed" and out["message_id"] is None
    assert "appointment" in out["error"] and "failed" in r.stderr
    composer.stop()


def test_compose_wait_times_out_without_a_composer(db, conf, world):
    t0 = time.monotonic()
    err = fails(conf, "compose", "--template", "hello", "--patient", world.anna, "--wait", "1")
    assert "still waiting for the composer" in err
    assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------
# outbox, inbox, message show


def test_outbox_json_has_the_fields_and_hides_sent(db, conf, world):
    long_subject = "A very long subject that the table must cut short " * 3
    m1 = world.message(subject=long_subject, deliver_after="2030-01-01T00:00:00Z")
    m2 = world.message(channel="sms", to_addr="+447700900123", subject="", attempts=3,
                       flagged=True, last_code=451, last_error="busy")
    world.message(state="sent", subject="already gone")
    rows = cli_json(conf, "outbox")
    assert [r["id"] for r in rows] == [m1, m2]
    expected = {"id", "flagged", "send_now", "channel", "created", "from", "to", "subject",
                "deliver_after", "status", "attempts", "last_code", "last_error"}
    assert expected <= set(rows[0])
    assert rows[0]["subject"] == long_subject and rows[0]["status"] == "queued"
    assert rows[0]["deliver_after"].startswith("2030-01-01")
    assert (rows[1]["flagged"], rows[1]["attempts"], rows[1]["last_code"],
            rows[1]["last_error"]) == (True, 3, 451, "451 busy")
    assert [r["id"] for r in cli_json(conf, "outbox", "--sort", "deliver_after", "--desc")] == \
        [m1, m2]
    assert [r["subject"] for r in cli_json(conf, "outbox", "--state", "sent")] == ["already gone"]
    assert [r["id"] for r in cli_json(conf, "outbox", "--channel", "sms")] == [m2]
    assert [r["id"] for r in cli_json(conf, "outbox", "--flagged")] == [m2]
    table = cli(conf, "outbox").stdout
    assert long_subject not in table and "A very long subject" in table and "\u2026" in table
    assert "451 busy" in table
    r = cli(conf, "outbox", "--limit", "1")
    assert len(r.stdout.splitlines()) == 2 and "1 of 2 shown" in r.stderr
    assert "not an outgoing state" in fails(conf, "outbox", "--state", "received", rc=2)


def test_inbox_and_message_show_keep_control_characters_off_the_terminal(db, conf, world):
    filed = world.message(state="received", from_addr="anna@example.org",
                          subject="Re: visit \x1b[31mred\x1b[0m", received_at="2024-05-01T10:00Z")
    loose = world.message(state="received", person_id=None, from_addr="x@spam.example",
                          subject="Unknown sender", received_at="2024-05-02T10:00Z")
    table = cli(conf, "inbox").stdout
    assert "\x1b" not in table and "Anna Meyer" in table
    assert [r["id"] for r in cli_json(conf, "inbox")] == [loose, filed]
    assert cli_json(conf, "inbox")[1]["subject"] == "Re: visit \x1b[31mred\x1b[0m"
    assert [r["id"] for r in cli_json(conf, "inbox", "--unfiled")] == [loose]
    assert cli_json(conf, "inbox", "--practice", world.practice + 1) == []

    shown = cli(conf, "message", "show", filed).stdout
    assert "secret body" not in shown and "\x1b" not in shown
    assert "Subject: Reminder" in shown and "Anna Meyer" in shown
    assert "secret body" in cli(conf, "message", "show", filed, "--body").stdout
    doc = cli_json(conf, "message", "show", filed)
    assert doc["id"] == filed and doc["direction"] == "in" and "body" not in doc
    assert doc["attachments"] == []
    assert "no message with id 9999" in fails(conf, "message", "show", 9999)


# --------------------------------------------------------------------------
# reset-failed, send-now


def test_reset_failed_requeues_a_flagged_message(db, conf, world):
    flagged = world.message(attempts=3, flagged=True, last_code=451,
                            deliver_after="2030-01-01T00:00:00Z")
    permanent = world.message(state="failed", attempts=1, last_code=550)
    untouched = world.message()
    r = cli(conf, "reset-failed", "--all")
    assert r.stdout.strip() == "1 message(s) reset"
    row = one(db, "SELECT state, attempts, flagged, deliver_after <= now() FROM messages "
              "WHERE id = %s", (flagged,))
    assert row == ("queued", 0, False, True)
    assert one(db, "SELECT state FROM messages WHERE id = %s", (permanent,)) == "failed"
    # A permanent failure goes back only when named; a queued one is left alone.
    r = cli(conf, "reset-failed", "--message", permanent, "--message", untouched, check=False)
    assert r.returncode == 1 and "1 message(s) reset" in r.stdout
    assert "message %d is queued; not reset" % untouched in r.stderr
    assert one(db, "SELECT state, attempts FROM messages WHERE id = %s",
               (permanent,)) == ("queued", 0)
    assert "say which messages" in fails(conf, "reset-failed", rc=2)


def test_send_now_queues_a_draft_and_refuses_a_sent_message(db, conf, world):
    draft = world.message(state="draft", deliver_after="2030-01-01T00:00:00Z")
    sent = world.message(state="sent")
    r = cli(conf, "send-now", draft, sent, check=False)
    assert r.returncode == 1 and "1 message(s) to be sent now" in r.stdout
    assert "message %d is sent" % sent in r.stderr
    assert one(db, "SELECT state, send_now, deliver_after <= now() FROM messages WHERE id = %s",
               (draft,)) == ("queued", True, True)
    assert one(db, "SELECT state, send_now FROM messages WHERE id = %s",
               (sent,)) == ("sent", False)


# --------------------------------------------------------------------------
# status, restart, diagnostics


def test_status_without_watchdog_reports_down(db, conf):
    db.sql("INSERT INTO service_checkins (stage, instance, host, pid, state, started_at, "
           "last_heartbeat, checked_in_at) VALUES ('sender', 'sender.1', 'h', 42, 'running', "
           "now() - interval '1 hour', now() - interval '10 minutes', "
           "now() - interval '10 minutes')")
    r = cli(conf, "status", check=False)
    assert r.returncode == 1
    assert "watchdog: DOWN" in r.stdout and "not running" in r.stdout
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("sender")][0]
    assert " down " in line and "10m" in line
    doc = json.loads(cli(conf, "--json", "status", check=False).stdout)
    assert doc["all_up"] is False and doc["watchdog"]["answered"] is False
    assert doc["stages"][0]["up"] is False and doc["stages"][0]["heartbeat_age"] >= 600
    assert doc["open_diagnostics"] == 0


def test_restart_without_watchdog_is_a_clear_error(db, conf, pp_tmp):
    t0 = time.monotonic()
    err = fails(conf, "restart", "sender")
    assert "cannot restart sender: the watchdog is not running" in err
    assert time.monotonic() - t0 < 3
    assert 'stage: "postfix" is not one of' in fails(conf, "restart", "postfix", rc=2)
    # Nobody listening on a TCP endpoint: the wait is bounded and said.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    tcp = db.config(os.path.join(pp_tmp, "tcp.conf"),
                    watchdog={"control": "tcp://127.0.0.1:%d" % port})
    err = fails(tcp, "restart", "--timeout", "1", "sender")
    assert "did not answer" in err and "within 1.0 s" in err


def test_restart_sends_control_and_prints_the_reply(conf, fake_watchdog):
    proc = cli_background(conf, "restart", "sender")
    ident, msg = fake_watchdog.recv()
    assert ident == ("ctl-%d" % proc.pid).encode()
    assert msg["type"] == "control"
    assert msg["body"] == {"command": "restart", "stage": "sender", "arg": ""}
    fake_watchdog.reply(ident, 1, "restarted sender.1 (pid 4321)")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out.strip() == "restarted sender.1 (pid 4321)"
    proc = cli_background(conf, "restart", "fetcher")
    ident, msg = fake_watchdog.recv()
    fake_watchdog.reply(ident, 0, "unknown stage fetcher")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1 and "unknown stage fetcher" in err


def test_diagnostics_open_and_all(db, conf, world):
    db.sql("INSERT INTO diagnostics (stage, severity, practice_id, email_account_id, code, text, "
           "resolved_at) VALUES ('sender', 'error', %s, %s, 'smtp_auth', 'login refused', NULL), "
           "('fetcher', 'warning', %s, NULL, 'imap_slow', 'slow server', now())",
           (world.practice, world.email_account, world.practice))
    rows = cli_json(conf, "diagnostics")
    assert [(r["code"], r["email_account_id"]) for r in rows] == [("smtp_auth",
                                                                   world.email_account)]
    assert "email:%d" % world.email_account in cli(conf, "diagnostics").stdout
    assert sorted(r["code"] for r in cli_json(conf, "diagnostics", "--all")) == ["imap_slow",
                                                                                 "smtp_auth"]
    cli(conf, "diagnostics", "resolve", rows[0]["id"])
    assert cli_json(conf, "diagnostics") == []


@pytest.mark.skipif(not all(os.access(os.path.join(BIN_DIR, "practicepost-" + s), os.X_OK)
                            for s in ("watchdog", "composer")),
                    reason="practicepost-watchdog or practicepost-composer is not built")
def test_status_restart_and_wake_with_the_real_watchdog(db, conf, world):
    conf = db.config(conf, watchdog={"stages": "composer", "heartbeat_interval_ms": "200",
                                     "heartbeat_timeout_ms": "1000", "stop_timeout_ms": "2000"},
                     composer={"poll_interval_ms": "60000"})
    Daemon("watchdog", conf)
    deadline = time.monotonic() + 15
    while cli(conf, "status", check=False).returncode != 0:
        assert time.monotonic() < deadline, cli(conf, "status", check=False).stdout
        time.sleep(0.2)
    doc = json.loads(cli(conf, "--json", "status").stdout)
    assert doc["all_up"] is True and doc["watchdog"]["answered"] is True
    assert {"composer", "watchdog"} <= {s["stage"] for s in doc["stages"]}
    # The composer polls once a minute: only the wake-up gets this done quickly.
    time.sleep(0.5)
    t0 = time.monotonic()
    r = cli(conf, "compose", "--template", "hello", "--patient", world.anna, "--wait", "10")
    assert len(r.stdout.split()) == 2 and time.monotonic() - t0 < 5
    before = one(db, "SELECT pid FROM service_checkins WHERE stage = 'composer'")
    r = cli(conf, "restart", "composer")
    assert r.stdout.startswith("restarted composer")
    deadline = time.monotonic() + 10
    while one(db, "SELECT restarts FROM service_checkins WHERE stage = 'composer'") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert one(db, "SELECT pid FROM service_checkins WHERE stage = 'composer'") != before
